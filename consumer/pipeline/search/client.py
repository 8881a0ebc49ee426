"""Building the opensearch-py async client from `OpenSearchSettings`: auth and TLS.

Building resolves AWS credentials for SigV4 (boto3's chain: environment, profile, ECS task
role, instance profile), which may do I/O, so sinks build their client on first use, never in
a constructor. The client sends no request until it is used.
"""

from __future__ import annotations

import base64
from typing import Any

import boto3
from opensearchpy import AsyncHttpConnection, AsyncOpenSearch, AWSV4SignerAsyncAuth

from consumer.pipeline.search.settings import OpenSearchSettings
from consumer.pipeline.sink import SinkError


class SearchConfigError(SinkError):
    """Settings that cannot work (SigV4 without credentials or region): never retryable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def build_client(settings: OpenSearchSettings) -> AsyncOpenSearch:
    """An AsyncOpenSearch client for `settings`.

    Retries are the sink's (it knows which failures are worth another try, and backs off), so
    the client's own are off. Certificates are verified unless `verify_certs` is False.
    """
    options: dict[str, Any] = {
        "hosts": [settings.endpoint],
        "connection_class": AsyncHttpConnection,
        "timeout": settings.timeout_s,
        "max_retries": 0,
        "retry_on_status": (),
        "retry_on_timeout": False,
        "verify_certs": settings.verify_certs,
        "ssl_show_warn": True,
    }
    if settings.ca_certs is not None:
        options["ca_certs"] = str(settings.ca_certs)
    if settings.auth == "basic":
        # As a header: opensearch-py's basic auth goes through aiohttp.BasicAuth, deprecated.
        options["headers"] = {"authorization": basic_authorization(settings)}
    auth = http_auth(settings)
    if auth is not None:
        options["http_auth"] = auth
    return AsyncOpenSearch(**options)


def basic_authorization(settings: OpenSearchSettings) -> str:
    """The Authorization header value for basic auth."""
    password = settings.password.get_secret_value() if settings.password else None
    credentials = f"{settings.username}:{password}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def http_auth(settings: OpenSearchSettings) -> Any:
    """The client's `http_auth`: a SigV4 signer for "sigv4", else None."""
    if settings.auth == "sigv4":
        session = boto3.session.Session()
        region = settings.endpoint_region or session.region_name
        if not region:
            raise SearchConfigError("SigV4 needs a region: set it in the settings or AWS_REGION")
        credentials = session.get_credentials()
        if credentials is None:
            raise SearchConfigError("SigV4 needs AWS credentials, and boto3 found none")
        # The signer reads frozen credentials per request, so refreshed role credentials
        # (ECS task role) are picked up without rebuilding the client.
        return AWSV4SignerAsyncAuth(credentials, region, settings.signing_service)
    return None
