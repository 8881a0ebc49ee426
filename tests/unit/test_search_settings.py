"""Search settings and the OpenSearch client they build: secure by default."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import AWSV4SignerAsyncAuth

from consumer.pipeline.search import search_sink
from consumer.pipeline.search.client import (
    SearchConfigError,
    basic_authorization,
    build_client,
    http_auth,
)
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.settings import (
    LocalIndexSettings,
    OpenSearchSettings,
    local_index_file,
)

DOMAIN = "https://search-orders-abc123.eu-west-1.es.amazonaws.com"
COLLECTION = "https://0a1b2c3d4e.us-east-2.aoss.amazonaws.com"


@pytest.fixture
def static_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def connection(client: Any) -> Any:
    (only,) = client.transport.connection_pool.connections
    return only


def test_defaults_sign_with_sigv4_and_verify_certificates() -> None:
    settings = OpenSearchSettings(endpoint=DOMAIN)
    assert settings.auth == "sigv4"
    assert settings.verify_certs is True
    assert settings.ca_certs is None


def test_signing_scope_comes_from_aws_endpoints() -> None:
    assert OpenSearchSettings(endpoint=DOMAIN).signing_service == "es"
    assert OpenSearchSettings(endpoint=DOMAIN).endpoint_region == "eu-west-1"
    assert OpenSearchSettings(endpoint=COLLECTION).signing_service == "aoss"
    assert OpenSearchSettings(endpoint=COLLECTION).endpoint_region == "us-east-2"
    custom = OpenSearchSettings(
        endpoint="https://search.example.com", service="aoss", region="ap-south-1"
    )
    assert (custom.signing_service, custom.endpoint_region) == ("aoss", "ap-south-1")
    assert OpenSearchSettings(endpoint="https://search.example.com").endpoint_region is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint": "search.example.com"}, "http:// or https:// URL"),
        ({"endpoint": "ftp://x"}, "http:// or https:// URL"),
        ({"endpoint": "https://u:p@search.example.com"}, "not in the endpoint URL"),
        ({"endpoint": DOMAIN, "index": "Orders"}, "not an OpenSearch index name"),
        ({"endpoint": DOMAIN, "index": "_x"}, "not an OpenSearch index name"),
        ({"endpoint": DOMAIN, "auth": "basic"}, "username and a password"),
        ({"endpoint": DOMAIN, "auth": "kerberos"}, "auth"),
        ({"endpoint": DOMAIN, "max_retries": -1}, "max_retries"),
        ({"endpoint": DOMAIN, "timeout_s": 0}, "timeout_s"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OpenSearchSettings(**kwargs)


def test_the_password_stays_out_of_repr() -> None:
    settings = OpenSearchSettings(endpoint=DOMAIN, auth="basic", username="u", password="hunter2")
    assert "hunter2" not in repr(settings)


async def test_the_client_verifies_certificates_and_host_names_by_default() -> None:
    # Entering the client creates its connections (no request is sent).
    async with build_client(OpenSearchSettings(endpoint=DOMAIN, auth="none")) as client:
        context = connection(client)._ssl_context
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert connection(client).host == DOMAIN + ":443"


async def test_verification_can_be_turned_off_explicitly() -> None:
    settings = OpenSearchSettings(endpoint=DOMAIN, auth="none", verify_certs=False)
    with pytest.warns(UserWarning, match="verify_certs=False is insecure"):
        async with build_client(settings) as client:
            assert connection(client)._ssl_context.verify_mode == ssl.CERT_NONE


def test_the_client_leaves_retries_to_the_sink() -> None:
    client = build_client(OpenSearchSettings(endpoint=DOMAIN, auth="none"))
    assert client.transport.max_retries == 0
    assert not client.transport.retry_on_status


@pytest.mark.usefixtures("static_credentials")
def test_sigv4_signs_for_the_endpoint_scope() -> None:
    auth = http_auth(OpenSearchSettings(endpoint=COLLECTION))
    assert isinstance(auth, AWSV4SignerAsyncAuth)
    assert (auth.signer.service, auth.signer.region) == ("aoss", "us-east-2")
    headers = auth("POST", COLLECTION + "/items/_bulk", b"{}\n", {})
    assert (
        headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        and "/us-east-2/aoss/aws4_request" in headers["Authorization"]
    )
    assert "X-Amz-Content-SHA256" in headers


@pytest.mark.usefixtures("static_credentials")
def test_sigv4_without_a_region_is_a_clear_error() -> None:
    with pytest.raises(SearchConfigError, match="region"):
        http_auth(OpenSearchSettings(endpoint="https://search.example.com"))


def test_basic_auth_is_a_header_and_none_means_none() -> None:
    settings = OpenSearchSettings(endpoint=DOMAIN, auth="basic", username="u", password="p")
    assert basic_authorization(settings) == "Basic dTpw"
    assert http_auth(settings) is None
    assert http_auth(OpenSearchSettings(endpoint=DOMAIN, auth="none")) is None


def test_the_local_index_is_the_default_search_sink(tmp_path: Path) -> None:
    local = LocalIndexSettings(index="orders", directory=tmp_path)
    sink = search_sink(None, local)
    assert isinstance(sink, LocalSearchIndex)
    assert sink.settings.file == tmp_path / "orders.sqlite3"
    assert not (tmp_path / "orders.sqlite3").exists()  # constructors do no I/O
    assert isinstance(search_sink(OpenSearchSettings(endpoint=DOMAIN)), OpenSearchSink)


def test_index_arguments_name_an_index_or_a_file() -> None:
    assert local_index_file("orders") == Path(".local-search/orders.sqlite3")
    assert local_index_file("/tmp/x.sqlite3") == Path("/tmp/x.sqlite3")
    assert local_index_file("data/idx") == Path("data/idx")
    assert LocalIndexSettings().file == Path(".local-search/changes.sqlite3")
