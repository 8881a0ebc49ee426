"""Issue 15.3 for the search sink: a bulk request retried after a backoff is a new request,
sent only while the shard's lease is still locally valid.

The pipeline lends the lease check to each sink write (`consumer.aws.fencing`); the search
sink retries a whole bulk request that OpenSearch answers with 429 or 5xx, after a backoff,
inside that one write. Here the lease lapses while the first request is answered (429, by the
strict protocol double): the retry must not be sent. Versioned documents would absorb a late
write, but the rule is the same for every sink: nothing is sent after the local expiry.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checkpoints.errors import LeaseLost
from consumer.aws.fencing import fenced
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.settings import OpenSearchSettings
from tests.change_factory import insert
from tests.opensearch_double import OpenSearchDouble

pytestmark = pytest.mark.integration


@pytest.fixture
def double() -> Iterator[OpenSearchDouble]:
    with OpenSearchDouble() as fresh:
        yield fresh


async def test_a_bulk_request_is_not_retried_after_the_lease_lapsed(
    double: OpenSearchDouble,
) -> None:
    settings = OpenSearchSettings(
        endpoint=double.url, index="orders", auth="none", retry_base_s=0.001, retry_cap_s=0.005
    )
    sink = OpenSearchSink(settings)
    try:
        await sink.write([insert("warm", 1_000_000, 0)])  # creates the index, outside a lease
        double.fail_next_bulk(1, status=429)

        def ensure_owned() -> None:  # lapses once the first bulk request was answered
            if len(double.bulk_requests()) > 1:
                raise LeaseLost("s1", "this worker's heartbeat lapsed (local expiry)")

        with pytest.raises(LeaseLost), fenced(ensure_owned):
            await sink.write([insert("a", 2_000_000, 1)])
        assert len(double.bulk_requests()) == 2  # the warm-up and the one refused with 429
    finally:
        await sink.aclose()
