"""Issue 20.5: the OpenSearch password comes from Secrets Manager (moto's, on the local
stack) when the settings name `pipelines.search.password_secret_arn`; on ECS the task
definition's `Secrets:` injects it instead (see tests/unit/test_infra_template.py)."""

from __future__ import annotations

import os

import pytest

from consumer.aws import AwsEndpoints
from consumer.local.stack import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, LocalStackState
from consumer.service.assembly import open_runtime
from consumer.service.search_secret import SearchSecretError, search_password
from consumer.settings import Settings, load_settings

pytestmark = pytest.mark.integration


def settings_for(
    local_stack: LocalStackState, monkeypatch: pytest.MonkeyPatch, secret_arn: str
) -> Settings:
    for key in list(os.environ):
        if key.startswith("CONSUMER_"):
            monkeypatch.delenv(key)
    for name, value in {
        "CONSUMER_STREAM__NAME": "orders",
        "CONSUMER_AWS__ENDPOINT_SECRETSMANAGER": local_stack.moto_url,
        "CONSUMER_AWS__ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "CONSUMER_AWS__SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        "CONSUMER_PIPELINES__SEARCH__ENABLED": "true",
        "CONSUMER_PIPELINES__SEARCH__ENDPOINT": "https://search.example.com",
        "CONSUMER_PIPELINES__SEARCH__AUTH": "basic",
        "CONSUMER_PIPELINES__SEARCH__USERNAME": "consumer",
        "CONSUMER_PIPELINES__SEARCH__PASSWORD_SECRET_ARN": secret_arn,
        "CONSUMER_PIPELINES__SEARCH__RETRY__ON_FAILURE": "stop",
    }.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.fixture
def endpoints(local_stack: LocalStackState) -> AwsEndpoints:
    """The local stack's endpoints, Secrets Manager (moto) included."""
    local = local_stack.endpoints()
    urls = {**local.endpoint_urls, "secretsmanager": local_stack.moto_url}
    return AwsEndpoints(
        region=local.region,
        endpoint_urls=urls,
        access_key_id=local.access_key_id,
        secret_access_key=local.secret_access_key,
    )


def create_secret(endpoints: AwsEndpoints, name: str, value: str) -> str:
    arn: str = endpoints.client("secretsmanager").create_secret(Name=name, SecretString=value)[
        "ARN"
    ]
    return arn


@pytest.mark.parametrize(
    "stored", ["s3cr3t-canary", '{"username": "consumer", "password": "s3cr3t-canary"}']
)
async def test_the_password_is_read_from_the_secret(
    local_stack: LocalStackState,
    endpoints: AwsEndpoints,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    stored: str,
) -> None:
    arn = create_secret(endpoints, unique_name, stored)
    settings = settings_for(local_stack, monkeypatch, arn)
    assert settings.pipelines.search.password is None
    async with open_runtime(settings) as runtime:
        assert runtime.clients.search_password == "s3cr3t-canary"


async def test_a_json_secret_without_a_password_is_one_line(
    local_stack: LocalStackState,
    endpoints: AwsEndpoints,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arn = create_secret(endpoints, unique_name, '{"user": "consumer", "pw": "s3cr3t-canary"}')
    settings = settings_for(local_stack, monkeypatch, arn)
    with pytest.raises(SearchSecretError) as refused:
        await search_password(settings)
    message = str(refused.value)
    assert "\n" not in message and '"password" key' in message
    assert "s3cr3t-canary" not in message


async def test_an_injected_password_wins_and_no_secret_is_read(
    local_stack: LocalStackState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ECS: `Secrets:` injected the value; the ARN (of a secret that does not even exist
    here) is then only documentation."""
    missing = "arn:aws:secretsmanager:us-east-1:000000000000:secret:nowhere-AbCdEf"
    settings_for(local_stack, monkeypatch, missing)
    monkeypatch.setenv("CONSUMER_PIPELINES__SEARCH__PASSWORD", "injected")
    assert await search_password(load_settings()) == "injected"
