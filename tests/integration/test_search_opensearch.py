"""The OpenSearch search sink, through opensearch-py, against the strict protocol double."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from opensearchpy import AsyncOpenSearch

from consumer.pipeline.search.mapping import INDEX_BODY
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.queries import live_only
from consumer.pipeline.search.settings import OpenSearchSettings
from consumer.pipeline.sink import SinkError
from tests.change_factory import change, insert, remove, upsert
from tests.opensearch_double import OpenSearchDouble, SigV4Check
from tests.unit.test_search_strategies import Delivery, deliveries, expected_items

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def live_search_body(query: dict[str, Any] | None = None, size: int = 10) -> dict[str, Any]:
    """A `_search` request body for `query` over live items."""
    return {"query": live_only(query), "size": size}


@pytest.fixture(scope="module")
def shared_double() -> Iterator[OpenSearchDouble]:
    with OpenSearchDouble() as double:
        yield double


@pytest.fixture
def double() -> Iterator[OpenSearchDouble]:
    with OpenSearchDouble() as fresh:
        yield fresh


def quick(endpoint: str, **kwargs: Any) -> OpenSearchSettings:
    """Settings for tests: plain auth, fast retries."""
    options: dict[str, Any] = {
        "index": "orders",
        "auth": "none",
        "retry_base_s": 0.001,
        "retry_cap_s": 0.005,
        **kwargs,
    }
    return OpenSearchSettings(endpoint=endpoint, **options)


@pytest.fixture
async def sink(double: OpenSearchDouble) -> AsyncIterator[OpenSearchSink]:
    writer = OpenSearchSink(quick(double.url))
    try:
        yield writer
    finally:
        await writer.aclose()


@pytest.fixture
async def client(double: OpenSearchDouble) -> AsyncIterator[AsyncOpenSearch]:
    reader = AsyncOpenSearch(hosts=[double.url])
    try:
        yield reader
    finally:
        await reader.close()


async def live_values(client: AsyncOpenSearch, index: str = "orders") -> dict[str, Any]:
    await client.indices.refresh(index=index)
    response = await client.search(index=index, body=live_search_body(size=1000))
    return {hit["_id"]: hit["_source"]["item"]["value"] for hit in response["hits"]["hits"]}


# --- convergence --------------------------------------------------------------------------


async def test_the_newest_change_wins_whatever_the_order(
    sink: OpenSearchSink, client: AsyncOpenSearch
) -> None:
    history = [insert("a", 1_000, 1), upsert("a", 2_000, 2), upsert("a", 3_000, 3)]
    assert await sink.write([history[2], history[0]]) == {}
    assert await sink.write([history[1], history[2]]) == {}  # older, and a duplicate
    assert await live_values(client) == {"a": 3}
    document = await client.get(index="orders", id="a")
    assert document["_version"] == 3_000  # the change time is the external version


async def test_a_late_insert_never_resurrects_a_deleted_item(
    sink: OpenSearchSink, client: AsyncOpenSearch
) -> None:
    assert await sink.write([insert("k", 1_000, 1), remove("k", 3_000)]) == {}
    assert await sink.write([insert("k", 1_000, 1), upsert("k", 2_000, 2)]) == {}
    assert await live_values(client) == {}
    count = await client.count(index="orders", body={"query": live_only()})
    assert count["count"] == 0
    tombstone = await client.get(index="orders", id="k")
    assert tombstone["_source"]["deleted"] is True
    assert tombstone["_version"] == 3_000
    # A change newer than the delete brings the item back.
    assert await sink.write([insert("k", 4_000, 4)]) == {}
    assert await live_values(client) == {"k": 4}


async def test_tombstones_outlive_opensearch_delete_garbage_collection(
    client: AsyncOpenSearch,
) -> None:
    # With index.gc_deletes elapsed (0 s here), a versioned DELETE forgets its version and a
    # late INSERT would come back; the sink's tombstone documents do not expire.
    with OpenSearchDouble(gc_deletes_s=0.0) as forgetful:
        raw = AsyncOpenSearch(hosts=[forgetful.url])
        writer = OpenSearchSink(quick(forgetful.url))
        try:
            await writer.write([insert("x", 1_000, 1)])
            await raw.delete(
                index="orders", id="x", params={"version": 3_000, "version_type": "external"}
            )
            late = [
                {"index": {"_id": "x", "version": 1_000, "version_type": "external"}},
                {"item": {"value": 1}},
            ]
            await raw.bulk(index="orders", body=late)
            assert forgetful.version("orders", "x") == 1_000  # resurrected
            assert await writer.write([insert("y", 1_000, 1), remove("y", 3_000)]) == {}
            assert await writer.write([insert("y", 1_000, 1)]) == {}
            assert forgetful.version("orders", "y") == 3_000  # still the tombstone
        finally:
            await writer.aclose()
            await raw.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(delivery=deliveries())
def test_duplicates_and_disorder_converge_to_the_table(
    shared_double: OpenSearchDouble, delivery: Delivery
) -> None:
    index = f"p-{uuid.uuid4().hex[:12]}"

    async def deliver() -> dict[str, Any]:
        writer = OpenSearchSink(quick(shared_double.url, index=index))
        reader = AsyncOpenSearch(hosts=[shared_double.url])
        try:
            for batch in delivery.batches:
                assert await writer.write(batch) == {}
            await reader.indices.refresh(index=index)
            found = await reader.search(index=index, body=live_search_body(size=1000))
            count = await reader.count(index=index, body={"query": live_only()})
            items = {hit["_id"]: hit["_source"]["item"] for hit in found["hits"]["hits"]}
            assert count["count"] == len(items)
            return items
        finally:
            await writer.aclose()
            await reader.close()

    assert asyncio.run(deliver()) == expected_items(delivery.changes)


# --- documents ----------------------------------------------------------------------------


def fetch_text(url: str) -> str:
    with urllib.request.urlopen(url) as response:
        text: str = response.read().decode()
        return text


async def test_documents_keep_dynamodb_digits(
    sink: OpenSearchSink, double: OpenSearchDouble
) -> None:
    big = "12345678901234567890123456789012345678"
    event = change("INSERT", "n", 1_000, new={"n": {"N": big}, "f": {"N": "0.10"}})
    assert await sink.write([event]) == {}
    # What OpenSearch stores (and returns as _source) is what the sink sent, byte for byte.
    text = await asyncio.to_thread(fetch_text, f"{double.url}/orders/_doc/n")
    assert f'"n":{big}' in text and '"f":0.10' in text
    assert json.loads(text)["_source"]["item"]["n"] == int(big)


async def test_the_index_is_created_with_the_sink_mappings_once(
    sink: OpenSearchSink, double: OpenSearchDouble
) -> None:
    await sink.write([insert("a", 1_000, 1)])
    await sink.write([insert("b", 1_000, 1)])
    assert double.engine.indices["orders"].mapping.as_json() == INDEX_BODY["mappings"]
    calls = [(r.method, r.path) for r in double.requests]
    assert calls == [
        ("HEAD", "/orders"),
        ("PUT", "/orders"),
        ("GET", "/orders/_mapping"),
        ("POST", "/orders/_bulk"),
        ("POST", "/orders/_bulk"),
    ]


async def test_an_existing_index_with_a_compatible_mapping_is_used_as_it_is(
    double: OpenSearchDouble,
) -> None:
    double.engine.create_index("orders", INDEX_BODY)
    writer = OpenSearchSink(quick(double.url, create_index=False))
    try:
        assert await writer.write([insert("a", 1_000, 1)]) == {}
    finally:
        await writer.aclose()
    assert [r.method for r in double.requests] == ["HEAD", "GET", "POST"]


async def test_large_batches_are_split_into_bounded_bulk_requests(
    double: OpenSearchDouble, client: AsyncOpenSearch
) -> None:
    writer = OpenSearchSink(quick(double.url, max_bulk_bytes=4096))
    try:
        events = [insert(f"k{i:03d}", 1_000, i) for i in range(100)]
        assert await writer.write(events) == {}
    finally:
        await writer.aclose()
    bulks = double.bulk_requests()
    assert len(bulks) > 1 and all(len(r.body) <= 4096 for r in bulks)
    assert len(await live_values(client)) == 100


# --- failures -----------------------------------------------------------------------------


async def test_refused_documents_are_reported_by_index_and_the_rest_applied(
    sink: OpenSearchSink, double: OpenSearchDouble, client: AsyncOpenSearch
) -> None:
    double.fail_document("bad", 400)
    double.fail_document("busy", 429)
    events = [
        insert("ok1", 1_000, 1),
        insert("bad", 1_000, 2),
        insert("busy", 1_000, 3),
        insert("ok2", 1_000, 4),
    ]
    failures = await sink.write(events)
    assert set(failures) == {1, 2}
    assert failures[1].retryable is False and "mapper_parsing_exception" in str(failures[1])
    assert failures[2].retryable is True and "es_rejected_execution_exception" in str(failures[2])
    assert await live_values(client) == {"ok1": 1, "ok2": 4}
    # The throttled document was sent again (max_retries more rounds); the refused one not.
    sent = [r.body.count(b'"_id":"busy"') for r in double.bulk_requests()]
    assert sum(sent) == 1 + sink.settings.max_retries
    assert sum(r.body.count(b'"_id":"bad"') for r in double.bulk_requests()) == 1


async def test_briefly_throttled_documents_are_resent_until_applied(
    sink: OpenSearchSink, double: OpenSearchDouble, client: AsyncOpenSearch
) -> None:
    double.fail_document("b", 429, times=2)
    double.fail_document("c", 503, times=1)
    failures = await sink.write(
        [insert("a", 1_000, 1), insert("b", 1_000, 2), insert("c", 1_000, 3)]
    )
    assert failures == {}
    assert await live_values(client) == {"a": 1, "b": 2, "c": 3}
    # Resent rounds carry only the documents that failed.
    assert [r.body.count(b'{"index"') for r in double.bulk_requests()] == [3, 2, 1]


async def test_failures_point_at_the_newest_change_of_a_document(
    sink: OpenSearchSink, double: OpenSearchDouble
) -> None:
    double.fail_document("a", 400)
    failures = await sink.write(
        [insert("a", 1_000, 1), insert("z", 1_000, 1), upsert("a", 2_000, 2)]
    )
    assert list(failures) == [2]  # the older change to "a" is superseded in the batch


async def test_a_document_too_large_for_any_request_is_that_records_failure() -> None:
    with OpenSearchDouble(max_content_bytes=2048) as limited:
        writer = OpenSearchSink(quick(limited.url, max_bulk_bytes=1024))
        huge = change("INSERT", "huge", 1_000, new={"text": {"S": "x" * 4000}})
        try:
            failures = await writer.write([insert("a", 1_000, 1), huge, insert("b", 1_000, 2)])
        finally:
            await writer.aclose()
        assert list(failures) == [1] and not failures[1].retryable
        assert "too large" in str(failures[1])
        assert limited.version("orders", "a") == limited.version("orders", "b") == 1_000


async def test_invalid_changes_are_not_sent(sink: OpenSearchSink, double: OpenSearchDouble) -> None:
    failures = await sink.write([change("MODIFY", "a", 1_000), insert("b", 1_000, 1)])
    assert list(failures) == [0] and failures[0].retryable is False
    assert sum(r.body.count(b'{"index"') for r in double.bulk_requests()) == 1


@pytest.mark.parametrize("status", [429, 503, 502])
async def test_throttled_or_failed_requests_are_retried(
    sink: OpenSearchSink, double: OpenSearchDouble, client: AsyncOpenSearch, status: int
) -> None:
    double.fail_next_bulk(2, status)
    assert await sink.write([insert("a", 1_000, 1)]) == {}
    assert [r.status for r in double.bulk_requests()] == [status, status, 200]
    assert await live_values(client) == {"a": 1}


@pytest.mark.parametrize("status", [429, 503])
async def test_requests_failing_past_the_retries_raise_a_retryable_error(
    sink: OpenSearchSink, double: OpenSearchDouble, status: int
) -> None:
    double.fail_next_bulk(10, status)
    with pytest.raises(SinkError) as raised:
        await sink.write([insert("a", 1_000, 1)])
    assert raised.value.retryable
    assert str(status) in str(raised.value)
    assert len(double.bulk_requests()) == 1 + sink.settings.max_retries


async def test_an_unreachable_endpoint_raises_a_retryable_error() -> None:
    with OpenSearchDouble() as gone:
        url = gone.url
    writer = OpenSearchSink(quick(url, max_retries=1, create_index=False))
    try:
        with pytest.raises(SinkError) as raised:
            await writer.write([insert("a", 1_000, 1)])
        assert raised.value.retryable
    finally:
        await writer.aclose()


# --- security -----------------------------------------------------------------------------


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("aws_credentials")
@pytest.mark.parametrize("service", ["es", "aoss"])
async def test_sigv4_signs_every_request(service: str) -> None:
    check = SigV4Check(ACCESS_KEY, SECRET_KEY, "eu-west-1", service)
    with OpenSearchDouble(sigv4=check) as strict:
        settings_ = quick(strict.url, auth="sigv4", region="eu-west-1", service=service)
        writer = OpenSearchSink(settings_)
        try:
            assert await writer.write([insert("a", 1_000, 1), remove("b", 2_000)]) == {}
        finally:
            await writer.aclose()
        # HEAD, PUT, GET _mapping, _bulk
        assert [r.status for r in strict.requests] == [404, 200, 200, 200]
        for request in strict.requests:
            assert request.headers["authorization"].startswith(
                f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"
            )
            assert f"/eu-west-1/{service}/aws4_request" in request.headers["authorization"]


async def test_a_bad_signature_is_a_destination_fault_not_retried_by_the_sink(
    aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    check = SigV4Check(ACCESS_KEY, SECRET_KEY, "eu-west-1", "es")
    with OpenSearchDouble(sigv4=check) as strict:
        writer = OpenSearchSink(quick(strict.url, auth="sigv4", region="eu-west-1"))
        try:
            with pytest.raises(SinkError) as raised:
                await writer.write([insert("a", 1_000, 1)])
        finally:
            await writer.aclose()
        # The pipeline holds the shard (retryable); at start-up it is one line (preflight).
        assert raised.value.retryable and "403" in str(raised.value)
        assert len(strict.requests) == 1


async def test_basic_auth_sends_the_configured_user(double: OpenSearchDouble) -> None:
    writer = OpenSearchSink(quick(double.url, auth="basic", username="u", password="p"))
    try:
        await writer.write([insert("a", 1_000, 1)])
    finally:
        await writer.aclose()
    assert all(r.headers["authorization"] == "Basic dTpw" for r in double.requests)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that no public CA vouches for: (certfile, keyfile)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opensearch-double")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certfile), str(keyfile)


async def test_tls_certificates_are_verified_by_default(self_signed: tuple[str, str]) -> None:
    with OpenSearchDouble(tls=self_signed) as secure:
        assert secure.url.startswith("https://")
        writer = OpenSearchSink(quick(secure.url))
        try:
            with pytest.raises(SinkError) as raised:
                await writer.write([insert("a", 1_000, 1)])
        finally:
            await writer.aclose()
        # A destination fault: the shard waits (at start-up: one line), nothing is parked.
        assert "TLS" in str(raised.value) and raised.value.retryable
        assert secure.requests == []  # nothing was sent over the unverified connection


async def test_a_configured_ca_bundle_is_trusted(self_signed: tuple[str, str]) -> None:
    with OpenSearchDouble(tls=self_signed) as secure:
        writer = OpenSearchSink(quick(secure.url, ca_certs=self_signed[0]))
        try:
            assert await writer.write([insert("a", 1_000, 1)]) == {}
        finally:
            await writer.aclose()
        assert secure.version("orders", "a") == 1_000
