"""Issue 20.5: SigV4 signs for the endpoint's region. `search.region or aws.region` used to
win over the host, so a domain in another region than the service got requests signed for the
wrong region (AWS answers 403: "Credential should be scoped to a valid region")."""

from __future__ import annotations

from consumer.service.pipelines import search_signing_region

DOMAIN = "https://search-orders-abc123.eu-west-1.es.amazonaws.com"
COLLECTION = "https://abc123xyz.ap-southeast-2.aoss.amazonaws.com"


def test_the_hosts_region_wins_over_the_services() -> None:
    assert search_signing_region(None, DOMAIN, "us-east-1") == "eu-west-1"
    assert search_signing_region(None, COLLECTION, "us-east-1") == "ap-southeast-2"


def test_a_configured_region_wins_over_the_host() -> None:
    assert search_signing_region("eu-central-1", DOMAIN, "us-east-1") == "eu-central-1"


def test_a_custom_domain_name_signs_for_the_services_region() -> None:
    assert search_signing_region(None, "https://search.example.com", "us-east-1") == "us-east-1"
