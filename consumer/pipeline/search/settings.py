"""Settings of the search pipeline: an OpenSearch endpoint, or the embedded local index.

Constructing either object does no I/O; it only validates. When no OpenSearch endpoint is
configured, the search pipeline writes to the local index (`LocalIndexSettings`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

AuthMode = Literal["none", "basic", "sigv4"]
# The SigV4 signing name: "es" for managed domains, "aoss" for serverless collections.
SigningService = Literal["es", "aoss"]

# The same default as the service settings (consumer/settings.py, pipelines.search.index).
DEFAULT_INDEX = "changes"
DEFAULT_LOCAL_DIRECTORY = Path(".local-search")
LOCAL_SUFFIX = ".sqlite3"

# OpenSearch index names: lowercase, none of \ / * ? " < > | space , # :, not starting with
# - _ +, not "." or "..", at most 255 bytes.
_INDEX_NAME = re.compile(r"[a-z0-9][^A-Z\\/*?\"<>| ,#:]{0,254}")
# Regional AWS endpoints: search-NAME-ID.REGION.es.amazonaws.com and ID.REGION.aoss.amazonaws.com.
_AWS_HOST = re.compile(
    r".*\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.(?P<service>es|aoss)\.amazonaws\.com"
)


def check_index_name(name: str) -> str:
    """`name` if OpenSearch accepts it as an index name; ValueError otherwise."""
    if not _INDEX_NAME.fullmatch(name) or len(name.encode("utf-8")) > 255:
        raise ValueError(
            f"invalid index name {name!r}: use lowercase letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class OpenSearchSettings:
    """Where and how the search sink writes to OpenSearch.

    - `endpoint`: the domain or collection URL, `https://host[:port][/prefix]`.
    - `auth_mode`: "sigv4" (the default: IAM, for managed domains and serverless collections,
      with the credentials boto3 resolves, such as the ECS task role), "basic"
      (`username`/`password`, e.g. fine-grained access control's internal users) or "none".
    - `service` and `region`: the SigV4 signing scope. When unset they are read from an AWS
      endpoint's host name (`*.REGION.es.amazonaws.com`, `*.REGION.aoss.amazonaws.com`); the
      region falls back to boto3's configured region, the service to "es".
    - `verify_certs` (on by default) and `ca_certs` (a CA bundle path; default: certifi's).
    - `timeout_s`: per request. `max_retries`: extra attempts for a whole bulk request that
      was throttled (429), failed with a 5xx or could not connect, and extra rounds for
      documents a bulk response rejected with 429 or 5xx; backoff from `retry_base_s` up to
      `retry_cap_s`, full jitter.
    - `max_bulk_bytes`: a batch is sent as bulk requests of at most this many bytes (a single
      larger document goes alone). Managed domains accept 10 MiB or more per request.
    - `create_index`: create the index with the sink's mapping (`mapping.py`) on first use if
      it is missing; when off, a missing index is an error. An existing index's mapping is
      checked either way.
    """

    endpoint: str
    index: str = DEFAULT_INDEX
    auth_mode: AuthMode = "sigv4"
    service: SigningService | None = None
    region: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify_certs: bool = True
    ca_certs: str | None = None
    timeout_s: float = 30.0
    max_retries: int = 3
    retry_base_s: float = 0.2
    retry_cap_s: float = 5.0
    max_bulk_bytes: int = 5 * 1024 * 1024
    create_index: bool = True

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint must be an http(s) URL, got {self.endpoint!r}")
        if parts.query or parts.fragment:
            raise ValueError("endpoint must not have a query or fragment")
        if parts.username is not None or parts.password is not None:
            raise ValueError("put credentials in username/password, not in the endpoint URL")
        check_index_name(self.index)
        if self.auth_mode not in ("none", "basic", "sigv4"):
            raise ValueError(f"auth_mode must be none, basic or sigv4, got {self.auth_mode!r}")
        if self.service not in (None, "es", "aoss"):
            raise ValueError(f"service must be 'es' or 'aoss', got {self.service!r}")
        if self.auth_mode == "basic" and not (self.username and self.password):
            raise ValueError("auth_mode 'basic' needs a username and a password")
        if not self.timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.retry_base_s < 0 or self.retry_cap_s < self.retry_base_s:
            raise ValueError("need 0 <= retry_base_s <= retry_cap_s")
        if self.max_bulk_bytes < 1024:
            raise ValueError("max_bulk_bytes must be at least 1024")

    @property
    def signing_service(self) -> SigningService:
        """The SigV4 service name: as set, else from the endpoint's host, else "es"."""
        if self.service is not None:
            return self.service
        match = _AWS_HOST.fullmatch(urlsplit(self.endpoint).hostname or "")
        return "aoss" if match is not None and match["service"] == "aoss" else "es"

    @property
    def endpoint_region(self) -> str | None:
        """The region: as set, else from an AWS endpoint's host, else None (use boto3's)."""
        if self.region:
            return self.region
        match = _AWS_HOST.fullmatch(urlsplit(self.endpoint).hostname or "")
        return None if match is None else match["region"]

    @property
    def serverless(self) -> bool:
        """True for an OpenSearch Serverless collection (signing service "aoss")."""
        return self.signing_service == "aoss"


@dataclass(frozen=True)
class LocalIndexSettings:
    """The embedded local index: an SQLite file, `directory/<index>.sqlite3` unless `path`
    names the file itself."""

    index: str = DEFAULT_INDEX
    directory: Path = DEFAULT_LOCAL_DIRECTORY
    path: Path | None = None

    def __post_init__(self) -> None:
        check_index_name(self.index)

    @property
    def file(self) -> Path:
        return (
            self.path if self.path is not None else self.directory / f"{self.index}{LOCAL_SUFFIX}"
        )


def local_index_file(path_or_name: str, directory: Path = DEFAULT_LOCAL_DIRECTORY) -> Path:
    """The index file for a command-line `--index`: a path (it has a '/' or ends in .sqlite3)
    as given, otherwise an index name under `directory`."""
    if "/" in path_or_name or path_or_name.endswith(LOCAL_SUFFIX):
        return Path(path_or_name)
    return LocalIndexSettings(index=path_or_name, directory=directory).file
