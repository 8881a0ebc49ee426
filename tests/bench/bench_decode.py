"""Decoding throughput: the naive path against full and envelope-only decoding.

Run as `python tests/bench/bench_decode.py` (`make bench`). The workload is a set of distinct
~2 KB MODIFY records with both images, as the Kinesis destination writes them (compact JSON):
an order item with strings, numbers, a bool, a null, a string set, a nested map and lists.

- naive: `json.loads` + boto3's TypeDeserializer on Keys, NewImage and OldImage.
- full: `decode_destination_record(..., strict=True)`: the envelope plus the python view of
  the keys and both images (equal to the naive result, checked before timing). With the C fast
  path (consumer/records/_speedups.c) when it is built, as the service runs it.
- full_pure_python: the same with the C fast path switched off, for context.
- envelope: `decode_destination_record(...)`: the event with images kept as bytes (checked as
  JSON by the C envelope parser, built when a view is asked for).
- pipeline: what a pipeline runs per Kinesis record (`pipeline.decoders.decode_kinesis`: the
  position, the KPL check and the envelope); `decode_pipeline_us_per_record` is the floor of the
  null sink's CPU per record.
- views: the json and client views of a NewImage (what search and replication ask for), with
  and without the C fast path.
- parse_only: `orjson.loads` alone, for context: the ceiling of any decoder that parses the
  whole record once (the envelope path does; see consumer/records/kinesis.py).

All three run in the same process, interleaved, each repeated; the best run of each counts
(the least disturbed by other load). Prints one `name value unit` line per result.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from consumer.pipeline.decoders import decode_kinesis
from consumer.records import RecordPosition, attribute, decode_destination_record
from consumer.records.attribute import item_to_client, item_to_json
from consumer.records.batch import RawRecord
from tests.unit.test_records_strategies import python_only

RECORDS = 200  # distinct records, so no cache sees the same bytes twice in a row
PASSES = 2  # passes over the records per timed run (short runs: more chances of a quiet one)
REPETITIONS = 15  # timed runs per decoder; the best counts
POSITION = RecordPosition("orders", "shardId-000000000000", "4965406322456437133801254617")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def order_item(number: int, version: int) -> dict[str, Any]:
    return {
        "pk": f"customer#{number:08d}",
        "sk": f"order#2024-07-{1 + number % 28:02d}T22:41:26Z",
        "status": "SHIPPED" if version else "PENDING",
        "total": Decimal("1234.50") + number + version,
        "currency": "EUR",
        "quantity": 3 + version,
        "discount": Decimal("0.15"),
        "updatedAt": 1720046486486 + number,
        "version": 7 + version,
        "gift": bool(version),
        "note": None,
        "tags": {"express", "fragile"},
        "address": {
            "street": f"{number % 900 + 100} Main Street",
            "city": "Springfield",
            "zip": f"{number % 90000 + 10000}",
            "geo": {"lat": Decimal("37.774929"), "lon": Decimal("-122.419416")},
        },
        "lines": [
            {"sku": f"SKU-{number % 99991:05d}", "qty": 1 + line, "price": Decimal("19.99") + line}
            for line in range(2)
        ],
        "history": ["created", "paid", "packed"][: 2 + version],
        "description": "A moderately long description of the order to make the image realistic",
    }


def modify_record(number: int) -> bytes:
    def typed(item: dict[str, Any]) -> dict[str, Any]:
        return {name: _serializer.serialize(value) for name, value in item.items()}

    new, old = typed(order_item(number, 1)), typed(order_item(number, 0))
    record = {
        "awsRegion": "us-east-1",
        "eventID": f"{number:08x}-4b25-bd0d-a9a1-81a155114127",
        "eventName": "MODIFY",
        "userIdentity": None,
        "recordFormat": "application/json",
        "tableName": "Orders",
        "dynamodb": {
            "ApproximateCreationDateTime": 1720046486486729 + number,
            "Keys": {"pk": new["pk"], "sk": new["sk"]},
            "NewImage": new,
            "OldImage": old,
            "SizeBytes": 1512,
            "ApproximateCreationDateTimePrecision": "MICROSECOND",
        },
        "eventSource": "aws:dynamodb",
    }
    return json.dumps(record, separators=(",", ":")).encode()


def naive(data: bytes) -> object:
    body = json.loads(data)["dynamodb"]
    deserialize = _deserializer.deserialize
    return (
        {name: deserialize(value) for name, value in body["Keys"].items()},
        {name: deserialize(value) for name, value in body["NewImage"].items()},
        {name: deserialize(value) for name, value in body["OldImage"].items()},
    )


def full(data: bytes) -> object:
    return decode_destination_record(data, POSITION, strict=True)


def envelope(data: bytes) -> object:
    return decode_destination_record(data, POSITION)


# Each record as a reader hands it over, made before timing (see pipeline).
RAW_RECORDS: dict[bytes, RawRecord] = {}


def pipeline(data: bytes) -> object:
    return decode_kinesis(RAW_RECORDS[data], POSITION.stream, POSITION.shard_id)


def parse_only(data: bytes) -> object:
    return orjson.loads(data)


def check(records: list[bytes]) -> None:
    """Full decoding must give exactly the naive result."""
    for data in records[:20]:
        event = decode_destination_record(data, POSITION, strict=True)
        assert event.new_image is not None
        assert event.old_image is not None
        ours = (event.keys.python, event.new_image.python, event.old_image.python)
        assert ours == naive(data)


def records_per_second(decode: Callable[[bytes], object], records: list[bytes]) -> float:
    if decode is full_pure_python:
        with python_only():
            return _records_per_second(full, records)
    return _records_per_second(decode, records)


def full_pure_python(data: bytes) -> object:
    return full(data)  # run by records_per_second with the C fast path off


def _records_per_second(decode: Callable[[bytes], object], records: list[bytes]) -> float:
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(PASSES):
            for data in records:
                decode(data)
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    return PASSES * len(records) / elapsed


def main() -> None:
    records = [modify_record(number) for number in range(RECORDS)]
    check(records)
    for data in records:
        RAW_RECORDS[data] = RawRecord(data, POSITION.sequence_number, 1720046486486, "pk")
    decoders: dict[str, Callable[[bytes], object]] = {
        "naive": naive,
        "full": full,
        "full_pure_python": full_pure_python,
        "envelope": envelope,
        "pipeline": pipeline,
        "parse_only": parse_only,
    }
    for decode in decoders.values():  # warm up
        records_per_second(decode, records[:20])
    runs: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(REPETITIONS):
        for name, decode in decoders.items():  # interleaved, so drift hits all alike
            runs[name].append(records_per_second(decode, records))
    best = {name: max(rates) for name, rates in runs.items()}

    size = statistics.mean(len(data) for data in records)
    print(f"decode_record_bytes {size:.0f} bytes")
    for name in decoders:
        print(f"decode_{name}_records_per_s {best[name]:.0f} records/s")
    print(f"decode_c_fast_path_built {int(attribute.NATIVE_PYTHON_VIEW)} flag")
    print(f"decode_speedup_vs_naive {best['full'] / best['naive']:.2f} x")
    print(f"decode_pure_python_speedup_vs_naive {best['full_pure_python'] / best['naive']:.2f} x")
    print(f"decode_envelope_speedup_vs_naive {best['envelope'] / best['naive']:.2f} x")
    print(f"decode_envelope_us_per_record {1e6 / best['envelope']:.1f} us")
    print(f"decode_pipeline_us_per_record {1e6 / best['pipeline']:.1f} us")
    views(records)


def views(records: list[bytes]) -> None:
    """The views sinks ask for (search: json, replication: client), per NewImage already parsed
    (typed JSON), with the C fast path and without it."""
    images = [orjson.loads(data)["dynamodb"]["NewImage"] for data in records]
    for name, convert in (("json", item_to_json), ("client", item_to_client)):
        best: dict[str, float] = {}
        for _ in range(REPETITIONS // 3):
            for mode in ("c", "pure_python"):
                with python_only() if mode == "pure_python" else nullcontext():
                    per_second = _records_per_second(convert, images)
                best[mode] = max(best.get(mode, 0.0), per_second)
        for mode, per_second in best.items():
            print(f"view_{name}_{mode}_us_per_image {1e6 / per_second:.1f} us")


if __name__ == "__main__":
    main()
