"""Settings of the search pipeline: the `pipelines.search` section (SearchSection, which the
service's settings compose), OpenSearchSettings (the section with an endpoint, plus the sink's
own knobs) and the embedded local index's file (LocalIndexSettings), used when no OpenSearch
endpoint is configured. Constructing any of them does no I/O; it only validates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from consumer import setting_rules as rules
from consumer.setting_rules import EndpointUrl, IndexName, Region, Section

AuthMode = Literal["none", "basic", "sigv4"]
# The SigV4 signing name: "es" for managed domains, "aoss" for serverless collections.
SigningService = Literal["es", "aoss"]

DEFAULT_INDEX = "changes"
DEFAULT_LOCAL_DIRECTORY = Path(".local-search")
LOCAL_SUFFIX = ".sqlite3"

# Regional AWS endpoints: search-NAME-ID.REGION.es.amazonaws.com and ID.REGION.aoss.amazonaws.com.
_AWS_HOST = re.compile(
    r".*\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.(?P<service>es|aoss)\.amazonaws\.com"
)


class SearchSection(Section):
    """Where and how the search pipeline writes: the `pipelines.search` section (README:
    Settings). Without `endpoint`, the embedded local index under `local_path`. `service` and
    `region` (the SigV4 scope) default to what an AWS endpoint's host name says, then to "es"
    and aws.region; `ca_certs` defaults to certifi's bundle."""

    endpoint: EndpointUrl | None = None
    index: IndexName = DEFAULT_INDEX
    auth: AuthMode = "sigv4"
    service: SigningService | None = None
    region: Region | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_secret_arn: Annotated[str, AfterValidator(rules.secret_arn)] | None = None
    verify_certs: bool = True
    ca_certs: Path | None = None
    timeout_s: float = Field(30.0, gt=0, le=600)
    local_path: Path = DEFAULT_LOCAL_DIRECTORY

    @field_validator("ca_certs")
    @classmethod
    def _ca_certs(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file (a PEM bundle of CA certificates)")
        return value

    def _aws_host(self, part: str) -> str | None:
        match = _AWS_HOST.fullmatch(urlsplit(self.endpoint or "").hostname or "")
        return None if match is None else match[part]

    @property
    def signing_service(self) -> SigningService:
        """The SigV4 service name: as set, else from the endpoint's host, else "es"."""
        if self.service is not None:
            return self.service
        return "aoss" if self._aws_host("service") == "aoss" else "es"

    @property
    def endpoint_region(self) -> str | None:
        """The region: as set, else from an AWS endpoint's host, else None (use boto3's)."""
        return self.region or self._aws_host("region")


class OpenSearchSettings(SearchSection):
    """The section with an endpoint and the resolved `password` (the section's, or read from
    `password_secret_arn`), plus the sink's own knobs (not settings):

    - `max_retries`: extra tries of a bulk request throttled (429), failing with a 5xx or
      unreachable, and extra rounds for bulk items refused with 429 or 5xx (full-jitter
      backoff from `retry_base_s` to `retry_cap_s`).
    - `max_bulk_bytes`: the most bytes per bulk request (a larger document goes alone).
    - `create_index`: create a missing index with the sink's mapping; off, it is an error.
    """

    endpoint: EndpointUrl
    max_retries: int = Field(3, ge=0)
    retry_base_s: float = Field(0.2, ge=0)
    retry_cap_s: float = 5.0
    max_bulk_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    create_index: bool = True

    @field_validator("endpoint")
    @classmethod
    def _plain_endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            raise ValueError("endpoint must not have a query or fragment")
        if parts.username is not None or parts.password is not None:
            raise ValueError("put credentials in username/password, not in the endpoint URL")
        return value

    @model_validator(mode="after")
    def _sink_rules(self) -> OpenSearchSettings:
        if self.auth == "basic" and not (self.username and self.password):
            raise ValueError("auth 'basic' needs a username and a password")
        if self.retry_cap_s < self.retry_base_s:
            raise ValueError("need 0 <= retry_base_s <= retry_cap_s")
        return self


@dataclass(frozen=True)
class LocalIndexSettings:
    """The embedded local index: an SQLite file, `directory/<index>.sqlite3` unless `path`
    names the file itself."""

    index: str = DEFAULT_INDEX
    directory: Path = DEFAULT_LOCAL_DIRECTORY
    path: Path | None = None

    def __post_init__(self) -> None:
        rules.index_name(self.index)

    @property
    def file(self) -> Path:
        return self.path or self.directory / f"{self.index}{LOCAL_SUFFIX}"


def local_index_file(path_or_name: str, directory: Path = DEFAULT_LOCAL_DIRECTORY) -> Path:
    """The index file for a command-line `--index`: a path (it has a '/' or ends in .sqlite3)
    as given, otherwise an index name under `directory`."""
    if "/" in path_or_name or path_or_name.endswith(LOCAL_SUFFIX):
        return Path(path_or_name)
    return LocalIndexSettings(index=path_or_name, directory=directory).file
