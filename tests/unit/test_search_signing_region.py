"""Issue 20.5: SigV4 signs for the endpoint's region. `search.region or aws.region` used to
win over the host, so a domain in another region than the service got requests signed for the
wrong region (AWS answers 403: "Credential should be scoped to a valid region")."""

from __future__ import annotations

from contextlib import AsyncExitStack

from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.service.assembly import Runtime
from consumer.service.sinks import PipelineClients
from consumer.settings import load_settings

DOMAIN = "https://search-orders-abc123.eu-west-1.es.amazonaws.com"
COLLECTION = "https://abc123xyz.ap-southeast-2.aoss.amazonaws.com"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"


def signing_region(endpoint: str, region: str | None = None) -> str | None:
    """The region the search sink built from the settings signs for (aws.region us-east-1)."""
    search = {"enabled": True, "endpoint": endpoint, **({"region": region} if region else {})}
    settings = load_settings(
        aws={"region": "us-east-1"},
        stream={"name": "orders"},
        pipelines={"search": search},
        dlq={"queue_url": QUEUE_URL},
    )
    (route,) = Runtime(settings, AsyncExitStack(), PipelineClients()).routes("shardId-0")
    assert isinstance(route.sink, OpenSearchSink)
    return route.sink.settings.endpoint_region


def test_the_hosts_region_wins_over_the_services() -> None:
    assert signing_region(DOMAIN) == "eu-west-1"
    assert signing_region(COLLECTION) == "ap-southeast-2"


def test_a_configured_region_wins_over_the_host() -> None:
    assert signing_region(DOMAIN, "eu-central-1") == "eu-central-1"


def test_a_custom_domain_name_signs_for_the_services_region() -> None:
    assert signing_region("https://search.example.com") == "us-east-1"
