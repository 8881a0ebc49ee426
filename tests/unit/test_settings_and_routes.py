"""Settings: sources, precedence, one clear line per invalid setting; and the routes built
from them."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.service.assembly import Runtime
from consumer.service.sinks import PipelineClients
from consumer.settings import SettingsError, load_settings

BASE = {
    "CONSUMER_STREAM__NAME": "orders-cdc",
    "CONSUMER_DLQ__QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CONSUMER_"):
            monkeypatch.delenv(key)


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_environment_overrides_the_file_which_overrides_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "consumer.toml"
    config.write_text(
        'application = "orders"\n[stream]\nname = "from-file"\nmode = "polling"\n'
        "polling_interval_s = 0.3\n"
    )
    set_env(monkeypatch, {"CONSUMER_STREAM__NAME": "from-env"})
    settings = load_settings(config)
    assert settings.application == "orders"
    assert settings.stream.name == "from-env"
    assert settings.stream.mode == "polling"
    assert settings.stream.polling_interval_s == 0.3
    assert settings.stop_timeout_s == 30
    assert settings.lease_table == "orders-leases"
    assert settings.consumer_name == "orders"


def test_each_invalid_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(
        monkeypatch,
        {
            **BASE,
            "CONSUMER_STREAM__POLLING_INTERVAL_S": "5",
            "CONSUMER_STREAM__MODE": "carrier-pigeon",
            "CONSUMER_TELEMETRY__HEALTH_PORT": "70000",
        },
    )
    with pytest.raises(SettingsError) as raised:
        load_settings()
    lines = raised.value.lines
    assert len(lines) == 3
    assert any(
        "stream.polling_interval_s (CONSUMER_STREAM__POLLING_INTERVAL_S)" in line for line in lines
    )
    assert any("stream.mode" in line and "carrier-pigeon" in line for line in lines)
    assert any("telemetry.health_port" in line for line in lines)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "stream.name or stream.arn is required"),
        (
            {**BASE, "CONSUMER_PIPELINES__REPLICATION__ENABLED": "true"},
            "replication.table is required",
        ),
        ({**BASE, "CONSUMER_PIPELINES__AUDIT__ENABLED": "true"}, "audit.bucket is required"),
        (
            {"CONSUMER_STREAM__NAME": "s", "CONSUMER_PIPELINES__SEARCH__ENABLED": "true"},
            "dlq.queue_url is required",
        ),
        ({**BASE, "CONSUMER_STREAM__MODE": "streams"}, "dynamodb_stream_arn is required"),
        ({**BASE, "CONSUMER_APPLICATION": "has space"}, "application"),
        ({**BASE, "CONSUMER_STREAM__INITIAL_POSITION": "YESTERDAY"}, "AT_TIMESTAMP="),
        ({**BASE, "CONSUMER_STREAM__NMAE": "typo"}, "CONSUMER_STREAM__NMAE is not a setting"),
    ],
)
def test_inconsistent_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    set_env(monkeypatch, env)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_missing_or_broken_config_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[stream\nname=")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(broken)


def test_config_show_hides_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(
        monkeypatch,
        {
            **BASE,
            "CONSUMER_PIPELINES__SEARCH__PASSWORD": "hunter2",
            "CONSUMER_AWS__SECRET_ACCESS_KEY": "s3cr3t",
        },
    )
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "s3cr3t" not in out
    assert '"orders-cdc"' in out


def test_config_show_reports_bad_settings_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(monkeypatch, {**BASE, "CONSUMER_STOP_TIMEOUT_S": "-1"})
    assert main(["config", "show"]) == 2
    assert "stop_timeout_s" in capsys.readouterr().err


def test_routes_cover_every_enabled_pipeline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_env(
        monkeypatch,
        {
            **BASE,
            "CONSUMER_PIPELINES__AUDIT__ENABLED": "true",
            "CONSUMER_PIPELINES__AUDIT__BUCKET": "audit",
            "CONSUMER_PIPELINES__SEARCH__ENABLED": "true",
            "CONSUMER_PIPELINES__SEARCH__LOCAL_PATH": str(tmp_path),
            "CONSUMER_PIPELINES__REPLICATION__ENABLED": "true",
            "CONSUMER_PIPELINES__REPLICATION__TABLE": "replica",
            "CONSUMER_PIPELINES__REPLICATION__FILTERS": '[{"eventName": ["INSERT"]}]',
        },
    )
    build = Runtime(load_settings(), AsyncExitStack(), PipelineClients(s3=object())).routes
    routes = build("shardId-000000000000")
    assert sorted(route.sink.name for route in routes) == ["audit", "replication", "search"]
    replication = next(r for r in routes if r.sink.name == "replication")
    assert replication.record_filter.matches({"eventName": "INSERT"})
    assert not replication.record_filter.matches({"eventName": "REMOVE"})
    # Audit buffers per shard: a new instance per shard; search is shared.
    other = build("shardId-000000000001")
    by_name = {r.sink.name: r.sink for r in routes}
    other_by_name = {r.sink.name: r.sink for r in other}
    assert by_name["audit"] is not other_by_name["audit"]
    assert by_name["search"] is other_by_name["search"]


def test_a_bad_filter_or_transform_fails_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(
        monkeypatch,
        {
            **BASE,
            "CONSUMER_PIPELINES__REPLICATION__ENABLED": "true",
            "CONSUMER_PIPELINES__REPLICATION__TABLE": "replica",
            "CONSUMER_PIPELINES__REPLICATION__TRANSFORM": "nowhere_module:fn",
        },
    )
    with pytest.raises(ValueError, match="cannot be imported"):
        Runtime(load_settings(), AsyncExitStack(), PipelineClients()).routes("shardId-0")


@pytest.mark.parametrize(
    ("variable", "value", "names"),
    [
        ("CONSUMER_PIPELINES__NULL__FILTERS", "notjson", "CONSUMER_PIPELINES"),
        ("CONSUMER_STREAM", "polling", "CONSUMER_STREAM"),
    ],
)
def test_a_value_that_is_not_the_json_it_needs_is_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, names: str
) -> None:
    """Issue 20.1: these were pydantic-settings tracebacks."""
    set_env(monkeypatch, {"CONSUMER_STREAM__NAME": "s", variable: value})
    with pytest.raises(SettingsError) as refused:
        load_settings()
    (line,) = refused.value.lines
    assert names in line and "JSON" in line


def test_a_mistyped_secret_is_named_but_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20.5: `(got {input!r})` printed a mistyped CONSUMER_PIPELINES__SEARCH__PASSWROD."""
    set_env(
        monkeypatch,
        {
            "CONSUMER_STREAM__NAME": "s",
            "CONSUMER_PIPELINES__SEARCH__PASSWROD": "hunter2-canary",
            "CONSUMER_AWS__SECRET_ACCESS_KEY": "",
        },
    )
    with pytest.raises(SettingsError) as refused:
        load_settings()
    text = "\n".join(refused.value.lines)
    assert "PASSWROD" in text
    assert "hunter2-canary" not in text


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_bytes(b'application = "caf\xe9"\n')
    with pytest.raises(SettingsError) as refused:
        load_settings(config)
    (line,) = refused.value.lines
    assert "not UTF-8" in line


def test_config_show_hides_credentials_inside_urls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(
        monkeypatch,
        {
            "CONSUMER_STREAM__NAME": "s",
            "CONSUMER_PIPELINES__SEARCH__ENDPOINT": "https://bob:hunter2-canary@search.example.com",
        },
    )
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "hunter2-canary" not in shown
    assert "https://********@search.example.com" in shown


# Issue 20.3: settings that `config show` used to accept; each is now one line naming it.
# Rules: ARN format (IAM User Guide, "IAM identifiers / ARNs"); Kinesis stream names
# (CreateStream: [a-zA-Z0-9_.-]+, 1-128); DynamoDB table names (Developer Guide, "Naming
# rules": 3-255 of [a-zA-Z0-9_.-]); S3 bucket naming rules (User Guide); OpenSearch index
# names (lowercase, no spaces or \ / * ? " < > | , #, not starting with _ - +); Lambda
# MaximumRetryAttempts / MaximumRecordAgeInSeconds for the retry bounds.
SILENTLY_ACCEPTED = [
    ("stream.arn", {"CONSUMER_STREAM__ARN": "arn:aws:kinesis:us-east-1:123456789012:orders"}),
    ("stream.arn", {"CONSUMER_STREAM__ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t"}),
    ("stream.arn", {"CONSUMER_STREAM__ARN": "orders-cdc"}),
    (
        "CONSUMER_STREAM)",  # name and ARN disagree: the section is named
        {"CONSUMER_STREAM__ARN": "arn:aws:kinesis:us-east-1:123456789012:stream/other"},
    ),
    (
        "stream.dynamodb_stream_arn",
        {
            "CONSUMER_STREAM__MODE": "streams",
            "CONSUMER_STREAM__DYNAMODB_STREAM_ARN": "arn:aws:dynamodb:us-east-1:123456789012:"
            "table/orders",
        },
    ),
    ("stream.initial_position", {"CONSUMER_STREAM__INITIAL_POSITION": "AT_TIMESTAMP="}),
    ("stream.initial_position", {"CONSUMER_STREAM__INITIAL_POSITION": "AT_TIMESTAMP=soon"}),
    ("leases.heartbeat_interval_s", {"CONSUMER_LEASES__HEARTBEAT_INTERVAL_S": "inf"}),
    ("leases.failover_s", {"CONSUMER_LEASES__FAILOVER_S": "nan"}),
    ("leases.failover_s", {"CONSUMER_LEASES__FAILOVER_S": "2"}),
    ("leases.worker_id", {"CONSUMER_LEASES__WORKER_ID": ""}),
    ("leases.table", {"CONSUMER_LEASES__TABLE": "x"}),
    ("leases.table", {"CONSUMER_LEASES__TABLE": "my leases"}),
    (
        "pipelines.audit.bucket",
        {
            "CONSUMER_PIPELINES__AUDIT__ENABLED": "true",
            "CONSUMER_PIPELINES__AUDIT__BUCKET": "My_Bucket",
        },
    ),
    ("dlq.overflow_bucket", {"CONSUMER_DLQ__OVERFLOW_BUCKET": "192.168.0.1"}),
    ("pipelines.search.index", {"CONSUMER_PIPELINES__SEARCH__INDEX": "Orders"}),
    ("pipelines.search.index", {"CONSUMER_PIPELINES__SEARCH__INDEX": "_orders"}),
    ("pipelines.null.retry", {"CONSUMER_PIPELINES__NULL__RETRY__MAX_ATTEMPTS": "0"}),
    ("pipelines.null.retry.max_attempts", {"CONSUMER_PIPELINES__NULL__RETRY__MAX_ATTEMPTS": "-2"}),
    ("pipelines.null.retry", {"CONSUMER_PIPELINES__NULL__RETRY__MAX_RECORD_AGE_S": "0.5"}),
    (
        "pipelines.null.filters",
        {"CONSUMER_PIPELINES__NULL__FILTERS": '[{"eventName": [{"nope": 1}]}]'},
    ),
    (
        "pipelines.replication.transform",
        {"CONSUMER_PIPELINES__REPLICATION__TRANSFORM": "no_such_module_anywhere:fn"},
    ),
    ("pipelines.replication.transform", {"CONSUMER_PIPELINES__REPLICATION__TRANSFORM": "json"}),
    ("aws.endpoint_kinesis", {"CONSUMER_AWS__ENDPOINT_KINESIS": "localhost:4566"}),
    ("pipelines.search.endpoint", {"CONSUMER_PIPELINES__SEARCH__ENDPOINT": "http://[::1"}),
    ("dlq.queue_url", {"CONSUMER_DLQ__QUEUE_URL": "garbage"}),
    ("aws.region", {"CONSUMER_AWS__REGION": "us-moon-1"}),
    ("pipelines.replication.region", {"CONSUMER_PIPELINES__REPLICATION__REGION": "useast1"}),
    ("pipelines.audit.kms_key_id", {"CONSUMER_PIPELINES__AUDIT__KMS_KEY_ID": "alias/audit"}),
    (
        "pipelines.search.auth",
        {
            "CONSUMER_PIPELINES__SEARCH__ENDPOINT": "http://search.internal:9200",
            "CONSUMER_PIPELINES__SEARCH__AUTH": "basic",
            "CONSUMER_PIPELINES__SEARCH__USERNAME": "bob",
            "CONSUMER_PIPELINES__SEARCH__PASSWORD": "pw",
        },
    ),
    ("pipelines.search.ca_certs", {"CONSUMER_PIPELINES__SEARCH__CA_CERTS": "/no/such/ca.pem"}),
    (
        "telemetry.prometheus_port",
        {"CONSUMER_TELEMETRY__PROMETHEUS_PORT": "8080", "CONSUMER_TELEMETRY__HEALTH_PORT": "8080"},
    ),
    ("telemetry.bind_address", {"CONSUMER_TELEMETRY__BIND_ADDRESS": "everywhere"}),
    (
        "pipelines.search.password_secret_arn",
        {"CONSUMER_PIPELINES__SEARCH__PASSWORD_SECRET_ARN": "arn:aws:s3:::bucket"},
    ),
]


@pytest.mark.parametrize(
    ("names", "values"),
    SILENTLY_ACCEPTED,
    ids=[f"{n}-{i}" for i, (n, _) in enumerate(SILENTLY_ACCEPTED)],
)
def test_nonsense_is_refused_on_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, names: str, values: dict[str, str]
) -> None:
    set_env(monkeypatch, {**BASE, **values})
    with pytest.raises(SettingsError) as refused:
        load_settings()
    (line,) = refused.value.lines
    assert names in line


def test_the_rules_accept_real_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    set_env(
        monkeypatch,
        {
            **BASE,
            "CONSUMER_STREAM__ARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/orders-cdc",
            "CONSUMER_STREAM__INITIAL_POSITION": "AT_TIMESTAMP=2026-01-31T12:00:00Z",
            "CONSUMER_AWS__REGION": "eu-west-1",
            "CONSUMER_LEASES__TABLE": "orders-cdc.leases_v2",
            "CONSUMER_LEASES__FAILOVER_S": "6",
            "CONSUMER_LEASES__HEARTBEAT_INTERVAL_S": "2",
            "CONSUMER_PIPELINES__AUDIT__BUCKET": "orders.audit-123456789012",
            "CONSUMER_PIPELINES__AUDIT__SSE": "aws:kms",
            "CONSUMER_PIPELINES__AUDIT__KMS_KEY_ID": "alias/audit",
            "CONSUMER_PIPELINES__SEARCH__ENDPOINT": "https://search.example.com:9200",
            "CONSUMER_PIPELINES__SEARCH__AUTH": "basic",
            "CONSUMER_PIPELINES__SEARCH__USERNAME": "bob",
            "CONSUMER_PIPELINES__SEARCH__PASSWORD_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:"
            "123456789012:secret:orders/search-AbC123",
            "CONSUMER_PIPELINES__SEARCH__CA_CERTS": str(ca),
            "CONSUMER_PIPELINES__SEARCH__INDEX": "orders-changes.v1",
            "CONSUMER_PIPELINES__REPLICATION__TRANSFORM": "json:loads",
            "CONSUMER_PIPELINES__NULL__RETRY__MAX_ATTEMPTS": "-1",
            "CONSUMER_PIPELINES__NULL__RETRY__MAX_RECORD_AGE_S": "60",
            "CONSUMER_DLQ__QUEUE_URL": "http://127.0.0.1:4566/000000000000/orders-dlq.fifo",
            "CONSUMER_TELEMETRY__BIND_ADDRESS": "127.0.0.1",
            "CONSUMER_TELEMETRY__PROMETHEUS_PORT": "9102",
        },
    )
    monkeypatch.delenv("CONSUMER_STREAM__NAME")
    settings = load_settings()
    assert settings.stream.arn and settings.stream.arn.endswith("stream/orders-cdc")
    assert settings.telemetry.bind_address == "127.0.0.1"


def test_an_endpoint_with_credentials_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20.5: `(got {input!r})` would print the password inside a malformed URL."""
    set_env(
        monkeypatch,
        {
            **BASE,
            "CONSUMER_PIPELINES__SEARCH__ENDPOINT": "htps://bob:hunter2-canary@search.example.com",
        },
    )
    with pytest.raises(SettingsError) as refused:
        load_settings()
    (line,) = refused.value.lines
    assert "pipelines.search.endpoint" in line
    assert "hunter2-canary" not in line


def test_a_mistyped_setting_is_named_once(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**BASE, "CONSUMER_PIPELINES__SEARCH__PASSWROD": "x"})
    with pytest.raises(SettingsError) as refused:
        load_settings()
    (line,) = refused.value.lines
    assert "CONSUMER_PIPELINES__SEARCH__PASSWROD is not a setting" in line


async def test_the_shared_search_sink_is_closed_when_the_runtime_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: the search sink every shard shares had no owner and was never closed (and
    `dlq replay` closed it after every record)."""
    from consumer.pipeline.search.local_index import LocalSearchIndex

    set_env(
        monkeypatch,
        {
            **BASE,
            "CONSUMER_PIPELINES__SEARCH__ENABLED": "true",
            "CONSUMER_PIPELINES__SEARCH__LOCAL_PATH": str(tmp_path),
        },
    )
    async with AsyncExitStack() as stack:
        build = Runtime(load_settings(), stack, PipelineClients()).routes
        (route,) = build("shardId-000000000000")
        sink = route.sink
        assert isinstance(sink, LocalSearchIndex)
        assert await sink.count() == 0  # opens the index (and its thread)
        assert sink._executor is not None
    assert sink._executor is None  # closed when the runtime's stack ended
