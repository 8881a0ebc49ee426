"""The service's settings (README's Settings: sources, precedence, every setting): the sections
defined next to their components, composed here with what spans sections. Every invalid setting
is reported on one line that names it (`SettingsError`).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from checkpoints import settings as leases
from consumer import setting_rules as rules
from consumer.aws import AwsEndpoints
from consumer.pipeline.audit.settings import AuditSection
from consumer.pipeline.filters import RecordFilter
from consumer.pipeline.replication import ReplicationSection
from consumer.pipeline.retry_policy import RetrySection
from consumer.pipeline.search.settings import SearchSection
from consumer.setting_rules import BucketName, EndpointUrl, Region, Section, TableName
from consumer.sources.select import StreamSection as StreamSection

ENV_PREFIX = "CONSUMER_"
PIPELINE_NAMES = ("audit", "search", "replication", "null")
CONFIG_FILE_ENV = "CONSUMER_CONFIG_FILE"
NOT_A_SETTING = "is not a setting (see `consumer config show`)"


# An SQS queue URL, https://sqs.REGION.amazonaws.com/ACCOUNT/NAME (any http(s) host, so VPC
# endpoints and the local stack work), ending in a queue name: 1-80 of [a-zA-Z0-9_-], .fifo.
QueueUrl = Annotated[
    str,
    AfterValidator(rules.endpoint_url),
    Field(pattern=r"^[^?#]*/[a-zA-Z0-9_-]{1,80}(\.fifo)?$"),
]


class AwsSection(Section):
    """Region and optional endpoint URLs (for the local stack or VPC endpoints)."""

    region: Region = "us-east-1"
    endpoint_kinesis: EndpointUrl | None = None
    endpoint_dynamodb: EndpointUrl | None = None
    endpoint_dynamodbstreams: EndpointUrl | None = None
    endpoint_s3: EndpointUrl | None = None
    endpoint_sqs: EndpointUrl | None = None
    endpoint_secretsmanager: EndpointUrl | None = None
    # Static credentials are for the local stack only; on ECS the task role is used.
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None

    def endpoints(self) -> AwsEndpoints:
        services = ("kinesis", "dynamodb", "dynamodbstreams", "s3", "sqs", "secretsmanager")
        urls = {name: url for name in services if (url := getattr(self, f"endpoint_{name}"))}
        secret = self.secret_access_key.get_secret_value() if self.secret_access_key else None
        return AwsEndpoints(
            region=self.region,
            endpoint_urls=urls,
            access_key_id=self.access_key_id,
            secret_access_key=secret,
        )


class LeasesSection(leases.LeasesSection):
    """The lease coordinator's section (checkpoints/settings.py), with DynamoDB's name rule."""

    table: TableName | None = None


class _Pipeline(Section):
    enabled: bool = False
    # Lambda FilterCriteria patterns (JSON objects); a record passes if any matches.
    filters: list[dict[str, Any]] = Field(default_factory=list)
    retry: RetrySection = Field(default_factory=RetrySection)

    @field_validator("filters")
    @classmethod
    def _filters(cls, patterns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        RecordFilter(patterns)  # a bad pattern raises FilterSyntaxError, a ValueError
        return patterns


def _required_when_on(pipeline: str, field: str) -> Any:
    """A model validator: `field` must be set while the pipeline is enabled."""

    def check(section: _Pipeline) -> _Pipeline:
        if section.enabled and not getattr(section, field):
            raise ValueError(
                f"pipelines.{pipeline}.{field} is required when the {pipeline} pipeline is on"
            )
        return section

    return model_validator(mode="after")(check)


class AuditPipeline(AuditSection, _Pipeline):
    _bucket = _required_when_on("audit", "bucket")


class SearchPipeline(SearchSection, _Pipeline):
    @model_validator(mode="after")
    def _basic_auth(self) -> SearchPipeline:
        if self.auth != "basic" or not self.endpoint:
            return self
        if self.endpoint.startswith("http://"):
            raise ValueError(
                "pipelines.search.auth = basic over http:// would send the password in clear "
                "text; use an https:// endpoint"
            )
        if not self.username or not (self.password or self.password_secret_arn):
            raise ValueError(
                "pipelines.search.auth = basic needs pipelines.search.username and "
                "pipelines.search.password (or password_secret_arn)"
            )
        return self


class ReplicationPipeline(ReplicationSection, _Pipeline):
    _table = _required_when_on("replication", "table")


class NullPipeline(_Pipeline):
    """Applies nothing: for benchmarks (the consumer's own cost) and smoke tests."""


class PipelinesSection(Section):
    audit: AuditPipeline = Field(default_factory=AuditPipeline)
    search: SearchPipeline = Field(default_factory=SearchPipeline)
    replication: ReplicationPipeline = Field(default_factory=ReplicationPipeline)
    null: NullPipeline = Field(default_factory=NullPipeline)


class DlqSection(Section):
    queue_url: QueueUrl | None = None
    overflow_bucket: BucketName | None = None
    overflow_prefix: str = "dlq-overflow/"


class BackfillSection(Section):
    """`consumer backfill`: where exports go, and the version margin of snapshot items."""

    export_bucket: str | None = None
    export_prefix: str = "backfill-exports"
    # Snapshot items are applied with version = snapshot time minus this margin, so a change
    # made just after the snapshot always wins despite clock skew and millisecond precision.
    version_margin_s: float = Field(300.0, ge=0, le=86_400)
    lease_s: float = Field(30.0, ge=2, le=3600)


def _ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IP address (0.0.0.0: all interfaces)") from None
    return value


class TelemetrySection(Section):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    emf: bool = True
    # CloudWatch's Namespace rule: 1-255 ASCII, not starting with ':' nor the reserved "AWS/".
    emf_namespace: str = Field(
        "DdbCdcConsumer", min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$"
    )
    metrics_interval_s: float = Field(60.0, gt=0)
    prometheus_port: int | None = Field(None, ge=0, le=65535)
    health_port: int | None = Field(8080, ge=0, le=65535)
    bind_address: Annotated[str, AfterValidator(_ip_address)] = "0.0.0.0"

    @field_validator("emf_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value.startswith((":", "AWS/")):
            raise ValueError("must not start with ':' or 'AWS/' (reserved for AWS services)")
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> TelemetrySection:
        if self.prometheus_port and self.prometheus_port == self.health_port:
            raise ValueError(
                f"telemetry.prometheus_port and telemetry.health_port are both "
                f"{self.health_port}; give them different ports"
            )
        return self


class Settings(BaseSettings):
    """Everything `consumer run` needs. Build with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )

    application: str = "ddb-cdc-consumer"
    aws: AwsSection = Field(default_factory=AwsSection)
    stream: StreamSection = Field(default_factory=StreamSection)
    leases: LeasesSection = Field(default_factory=LeasesSection)
    pipelines: PipelinesSection = Field(default_factory=PipelinesSection)
    dlq: DlqSection = Field(default_factory=DlqSection)
    backfill: BackfillSection = Field(default_factory=BackfillSection)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    stop_timeout_s: float = Field(30.0, gt=0, le=120)
    checkpoint_interval_s: float = Field(10.0, gt=0)

    @field_validator("application")
    @classmethod
    def _application(cls, value: str) -> str:
        if not value or len(value) > 100 or not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError("must be 1-100 letters, digits, '-', '_' or '.'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.stream.mode == "streams":
            if not self.stream.dynamodb_stream_arn:
                raise ValueError("stream.dynamodb_stream_arn is required in streams mode")
        elif not (self.stream.name or self.stream.arn):
            raise ValueError("stream.name or stream.arn is required")
        parks = any(
            getattr(self.pipelines, name).retry.on_failure == "dlq"
            for name in self.enabled_pipelines()
            if name != "null"
        )
        if parks and not self.dlq.queue_url:
            raise ValueError(
                "dlq.queue_url is required when a pipeline parks failures in the DLQ "
                '(or set that pipeline\'s retry.on_failure = "stop")'
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables override the file, which is passed in as init values.
        return env_settings, init_settings

    @property
    def consumer_name(self) -> str:
        return self.stream.consumer_name or self.application

    @property
    def lease_table(self) -> str:
        return self.leases.table or leases.default_table_name(self.application)

    def enabled_pipelines(self) -> list[str]:
        return [name for name in PIPELINE_NAMES if getattr(self.pipelines, name).enabled]


class SettingsError(ValueError):
    """Invalid settings: `lines` has one line per problem, each naming the setting."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


# Settings whose values are never echoed in an error (nor are unknown settings', which may be
# a mistyped secret such as CONSUMER_PIPELINES__SEARCH__PASSWROD).
_SECRET_NAME = re.compile(r"pass|secret|token|credential|key_id|auth", re.IGNORECASE)


def _echoes_input(problem: Any, location: tuple[int | str, ...]) -> bool:
    if problem["type"] in ("missing", "extra_forbidden") or isinstance(problem["input"], dict):
        return False
    return not any(_SECRET_NAME.search(str(part)) for part in location)


def _describe_env_error(error: Exception) -> str:
    found = re.search(r'field "([^"]+)"', str(error))
    field = found.group(1) if found else "?"
    variable = ENV_PREFIX + field.upper()
    return (
        f"setting {field} ({variable} or {variable}__*): a value is not valid JSON; give "
        f"sections field by field ({variable}__<FIELD>=...) and lists such as filters as JSON "
        '(e.g. [{"eventName": ["INSERT"]}])'
    )


def _describe(error: ValidationError) -> list[str]:
    lines = []
    for problem in error.errors():
        location = tuple(part for part in problem["loc"] if not isinstance(part, int))
        message = problem["msg"].removeprefix("Value error, ")
        if not location:
            lines.append(f"settings: {message}")
            continue
        if problem["type"] == "extra_forbidden":
            message = NOT_A_SETTING
        if _echoes_input(problem, location):
            message += f" (got {_without_url_credentials(problem['input'])!r})"
        dotted = ".".join(str(part) for part in location)
        variable = ENV_PREFIX + "__".join(str(part).upper() for part in location)
        lines.append(f"setting {dotted} ({variable}): {message}")
    return lines


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as error:
        raise SettingsError([f"config file {path} does not exist"]) from error
    except tomllib.TOMLDecodeError as error:
        raise SettingsError([f"config file {path} is not valid TOML: {error}"]) from error
    except UnicodeDecodeError as error:
        raise SettingsError(
            [f"config file {path} is not UTF-8 text (byte {error.start} is invalid)"]
        ) from error
    except OSError as error:
        raise SettingsError([f"config file {path} cannot be read: {error}"]) from error


# CONSUMER_* variables that are not settings.
_NOT_SETTINGS = frozenset(
    {
        CONFIG_FILE_ENV,
        "CONSUMER_KINESIS_MOCK_JS",
        # Read by `consumer leases` (which needs no full settings), not by Settings.
        "CONSUMER_ENDPOINT_DYNAMODB",
        "CONSUMER_ENDPOINT_KINESIS",
    }
)


def _setting_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name.upper()}"
        paths.add(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= _setting_paths(annotation, f"{path}__")
    return paths


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and the optional TOML file; raises SettingsError (also for
    a CONSUMER_* variable that names no setting: a typo would silently keep the default)."""
    env_file = os.environ.get(CONFIG_FILE_ENV)
    path = config_file or (Path(env_file) if env_file else None)
    values = {**(read_config_file(path) if path else {}), **overrides}
    known = _setting_paths(Settings)
    unknown = [
        f"{key} {NOT_A_SETTING}"
        for key in sorted(os.environ)
        if key.startswith(ENV_PREFIX)
        and key not in _NOT_SETTINGS
        and key.removeprefix(ENV_PREFIX) not in known
    ]
    try:
        settings = Settings(**values)
    except ValidationError as error:
        described = _describe(error)
        # An unknown variable is also an "extra" field of its section: say it once.
        named = {line.split(" ", 1)[0] for line in unknown}
        described = [line for line in described if not any(f"({n})" in line for n in named)]
        raise SettingsError(unknown + described) from None
    except PydanticSettingsError as error:  # a CONSUMER_* value that is not the JSON it needs
        raise SettingsError([*unknown, _describe_env_error(error)]) from None
    if unknown:
        raise SettingsError(unknown)
    return settings


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, secrets shown as '********' (credentials inside
    URLs, such as https://user:password@host, included)."""
    data: dict[str, Any] = _without_url_credentials(settings.model_dump(mode="json"))
    return data


def _without_url_credentials(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_url_credentials(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_url_credentials(item) for item in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        return re.sub(r"(://)[^/@\s]*@", r"\1********@", value)
    return value
