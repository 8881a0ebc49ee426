"""The AWS and OpenSearch naming rules a setting must follow (each source next to its rule).

Each check returns the value or raises ValueError with a short reason; the annotated types
below attach them to the sections' fields, so a bad value is refused at load, not later.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

import botocore.loaders
from pydantic import AfterValidator, BaseModel, ConfigDict

# ARN syntax: arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html).
_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
    r"(?P<account>\d{12}|):(?P<resource>.+)"
)
# Kinesis stream names: 1-128 of [a-zA-Z0-9_.-] (Kinesis API Reference, CreateStream).
_KINESIS_STREAM_NAME = r"[a-zA-Z0-9_.-]{1,128}"
# DynamoDB table names: 3-255 of [a-zA-Z0-9_.-] (DynamoDB Developer Guide, Naming rules).
_DYNAMODB_TABLE_NAME = re.compile(r"[a-zA-Z0-9_.-]{3,255}")
# Secrets Manager secret ARNs end in the name plus "-" and 6 random characters.
_SECRET_RESOURCE = r"secret:[a-zA-Z0-9/_+=.@-]{1,512}-[a-zA-Z0-9]{6}"
# S3 general purpose bucket naming rules (S3 User Guide, "Bucket naming rules"): 3-63
# characters, lowercase letters, digits, dots and hyphens, beginning and ending with a letter
# or digit, no two adjacent dots, not an IP address, no reserved prefixes or suffixes.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# OpenSearch index names (OpenSearch docs, "Index APIs / Create index", naming restrictions):
# lowercase, none of  : " * + / \ | ? # > < , or space, not starting with _ - +, not . or ..,
# at most 255 bytes.
_INDEX_FORBIDDEN = set(' :"*+/\\|?#><,')


def _arn_parts(value: str) -> re.Match[str]:
    found = _ARN.fullmatch(value)
    if found is None:
        raise ValueError(
            "is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, e.g. "
            "arn:aws:kinesis:us-east-1:123456789012:stream/orders)"
        )
    return found


def _service_arn(value: str, service: str, resource: str, problem: str) -> str:
    """`value` if it is an ARN of `service`, its resource matching `resource`, in a known
    region; else ValueError(`problem`)."""
    parts = _arn_parts(value)
    if parts["service"] != service or not re.fullmatch(resource, parts["resource"]):
        raise ValueError(problem)
    region_name(parts["region"])
    return value


def kinesis_stream_arn(value: str) -> str:
    shape = "(arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"
    service = _arn_parts(value)["service"]
    if service != "kinesis":
        raise ValueError(f"is a {service} ARN, not a Kinesis stream's {shape}")
    resource = f"stream/{_KINESIS_STREAM_NAME}"
    return _service_arn(value, service, resource, f"is not a Kinesis stream ARN {shape}")


def kinesis_stream_name(value: str) -> str:
    if not re.fullmatch(_KINESIS_STREAM_NAME, value):
        raise ValueError("must be 1-128 letters, digits, '_', '.' or '-' (a Kinesis stream name)")
    return value


def stream_name_of_arn(arn: str) -> str:
    return arn.split(":stream/", 1)[1]


def dynamodb_stream_arn(value: str) -> str:
    """arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL (DescribeStream's StreamArn)."""
    return _service_arn(
        value,
        "dynamodb",
        r"table/[a-zA-Z0-9_.-]{3,255}/stream/[^/\s]{1,64}",
        "is not a DynamoDB stream ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/"
        "LABEL; DescribeTable's LatestStreamArn)",
    )


def secret_arn(value: str) -> str:
    return _service_arn(
        value,
        "secretsmanager",
        _SECRET_RESOURCE,
        "is not a Secrets Manager secret ARN "
        "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf)",
    )


def dynamodb_table_name(value: str) -> str:
    if not _DYNAMODB_TABLE_NAME.fullmatch(value):
        raise ValueError("must be 3-255 letters, digits, '_', '.' or '-' (a DynamoDB table name)")
    return value


def bucket_name(value: str) -> str:
    if not _BUCKET.fullmatch(value):
        problem = "3-63 lowercase letters, digits, '.' or '-', starting and ending alphanumeric"
    elif ".." in value:
        problem = "no two adjacent dots"
    elif value.startswith(_BUCKET_RESERVED_PREFIXES) or value.endswith(_BUCKET_RESERVED_SUFFIXES):
        problem = "no reserved prefix (xn--, sthree-) or suffix (-s3alias, --ol-s3)"
    else:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            return value
        problem = "not an IP address"
    raise ValueError(f"is not an S3 bucket name: {problem}")


def index_name(value: str) -> str:
    if not value or value in (".", "..") or len(value.encode()) > 255:
        problem = "1-255 bytes, not '.' or '..'"
    elif value != value.lower():
        problem = "lowercase only"
    elif value[0] in "_-+":
        problem = "must not start with '_', '-' or '+'"
    elif _INDEX_FORBIDDEN & set(value):
        problem = 'none of  : " * + / \\ | ? # > < , or space'
    else:
        return value
    raise ValueError(f"is not an OpenSearch index name: {problem}")


def endpoint_url(value: str) -> str:
    """An http(s) URL with a host (what botocore and opensearch-py accept as an endpoint)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (parsed only to refuse a port that is not a number)
    except ValueError as error:
        raise ValueError(f"is not a URL ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an http:// or https:// URL with a host")
    return value


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region in the installed botocore's endpoint data (all partitions)."""
    endpoints = botocore.loaders.create_loader().load_data("endpoints")
    return frozenset(
        region for partition in endpoints["partitions"] for region in partition["regions"]
    )


def region_name(value: str) -> str:
    if value not in known_regions():
        raise ValueError(
            "is not an AWS region this botocore knows (e.g. us-east-1, eu-west-1; a region "
            "newer than botocore needs a newer botocore)"
        )
    return value


def timestamp_position(value: str) -> str:
    """AT_TIMESTAMP=<ISO 8601 time with a zone>, as the worker parses it."""
    text = value.removeprefix("AT_TIMESTAMP=")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "AT_TIMESTAMP needs an ISO 8601 time with a zone, e.g. "
            "AT_TIMESTAMP=2026-01-31T12:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise ValueError("AT_TIMESTAMP needs a time zone (e.g. Z or +00:00)")
    return value


def transform_reference(value: str) -> str:
    """`module:function` whose module can be found, without running the module's code (nor
    its packages': `importlib.util.find_spec("pkg.hooks")` imports `pkg`, so a command that
    only reads settings, such as `consumer dlq list`, would run the hook's package)."""
    module, sep, function = value.partition(":")
    if not sep or not module or not function.isidentifier():
        raise ValueError("must be module:function (e.g. my_package.hooks:redact)")
    if not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"module {module!r} is not a dotted Python module name")
    try:
        found = _find_without_importing(module)
    except (ImportError, ValueError) as error:
        raise ValueError(f"module {module!r} cannot be imported ({error})") from None
    if not found:
        raise ValueError(f"module {module!r} cannot be imported (not on the Python path)")
    return value


def _find_without_importing(module: str) -> bool:
    """Whether `module` can be found, asking the finders for each level in turn (a top-level
    name through every finder; submodules in their parent package's directories)."""
    parts = module.split(".")
    spec = importlib.util.find_spec(parts[0])  # a top-level name imports nothing
    for depth in range(1, len(parts)):
        if spec is None or spec.submodule_search_locations is None:
            return False  # not found, or a plain module: it has no submodules
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join(parts[: depth + 1]), list(spec.submodule_search_locations)
        )
    return spec is not None


class Section(BaseModel):
    """A section of the settings: unknown keys are refused and values never change."""

    # inf and nan are never meaningful here (an infinite heartbeat never fences).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @classmethod
    def of(cls, section: BaseModel, **more: Any) -> Self:
        """This model from the fields it shares with `section`, `more` added or replacing them."""
        shared = {
            name: getattr(section, name)
            for name in cls.model_fields
            if name in type(section).model_fields
        }
        return cls(**{**shared, **more})


Region = Annotated[str, AfterValidator(region_name)]
EndpointUrl = Annotated[str, AfterValidator(endpoint_url)]
TableName = Annotated[str, AfterValidator(dynamodb_table_name)]
BucketName = Annotated[str, AfterValidator(bucket_name)]
IndexName = Annotated[str, AfterValidator(index_name)]
TransformReference = Annotated[str, AfterValidator(transform_reference)]
