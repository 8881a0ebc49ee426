"""Price files: the packaged one is complete and sourced; malformed ones fail with one error
that names the key; unknown regions list the known ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from consumer.compare.costs.errors import PriceFileError, UnknownRegionError
from consumer.compare.costs.prices import PRICE_UNITS, known_regions, load_price_file, load_region

PACKAGED = Path(__file__).resolve().parents[2] / "consumer" / "data" / "prices"


def packaged_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((PACKAGED / "us-east-1.json").read_text())
    return document


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(document))
    return path


def test_packaged_region_has_every_price_with_source_and_date() -> None:
    sheet = load_region("us-east-1")
    assert sheet.region == "us-east-1"
    for key in PRICE_UNITS:
        price = getattr(sheet.prices, key)
        assert price.source.startswith("https://aws.amazon.com/"), key
        assert price.as_of.year >= 2026, key
        assert price.unit == PRICE_UNITS[key]


def test_packaged_prices_are_the_facts_numbers() -> None:
    prices = load_region("us-east-1").prices
    assert prices.kinesis_on_demand_stream_hour.value == 0.04
    assert prices.kinesis_on_demand_ingest_gb.value == 0.08
    assert prices.kinesis_shard_hour.value == 0.015
    assert prices.kinesis_put_payload_units_million.value == 0.014
    assert prices.kinesis_efo_consumer_shard_hour.value == 0.015
    assert prices.kinesis_efo_read_gb.value == 0.013
    assert prices.dynamodb_cdc_units_million.value == 0.10
    assert prices.lambda_gb_second.value == 0.0000166667
    assert prices.fargate_vcpu_hour.value == 0.04048


def test_unverified_prices_are_marked() -> None:
    # FACTS.md calls the CDC unit price unverified; SNS and exports are not in FACTS.md at all.
    assert load_region("us-east-1").unverified() == [
        "dynamodb_cdc_units_million",
        "dynamodb_export_gb",
        "sns_publishes_million",
    ]


def test_a_users_file_in_the_same_format_loads(tmp_path: Path) -> None:
    document = packaged_document()
    document["region"] = "eu-west-1"
    document["prices"]["kinesis_shard_hour"]["value"] = 0.017
    sheet = load_price_file(write(tmp_path, document))
    assert sheet.region == "eu-west-1"
    assert sheet.prices.kinesis_shard_hour.value == 0.017


def test_unknown_region_lists_the_known_ones() -> None:
    assert "us-east-1" in known_regions()
    with pytest.raises(UnknownRegionError, match=r"'mars-north-1'.*known regions: us-east-1"):
        load_region("mars-north-1")


def test_missing_key_is_named(tmp_path: Path) -> None:
    document = packaged_document()
    del document["prices"]["lambda_gb_second"]
    with pytest.raises(PriceFileError, match=r"prices\.lambda_gb_second: missing key"):
        load_price_file(write(tmp_path, document))


def test_missing_field_of_a_price_is_named(tmp_path: Path) -> None:
    document = packaged_document()
    del document["prices"]["sqs_requests_million"]["source"]
    with pytest.raises(PriceFileError, match=r"prices\.sqs_requests_million\.source: missing"):
        load_price_file(write(tmp_path, document))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-0.01, "greater than or equal to 0"),
        ("0.015", "must be a number"),
        (True, "must be a number"),
        (None, "must be a number"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, value: object, message: str) -> None:
    document = packaged_document()
    document["prices"]["kinesis_shard_hour"]["value"] = value
    with pytest.raises(PriceFileError, match=rf"prices\.kinesis_shard_hour\.value: .*{message}"):
        load_price_file(write(tmp_path, document))


def test_wrong_unit_is_rejected(tmp_path: Path) -> None:
    document = packaged_document()
    document["prices"]["kinesis_on_demand_ingest_gb"]["unit"] = "USD per TB"
    with pytest.raises(PriceFileError, match=r"kinesis_on_demand_ingest_gb: .*'USD per GB'"):
        load_price_file(write(tmp_path, document))


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    document = packaged_document()
    document["prices"]["kinesis_shard_hours"] = document["prices"]["kinesis_shard_hour"]
    with pytest.raises(PriceFileError, match=r"prices\.kinesis_shard_hours: unknown key"):
        load_price_file(write(tmp_path, document))


def test_bad_date_and_source_are_named(tmp_path: Path) -> None:
    document = packaged_document()
    document["prices"]["fargate_gb_hour"]["as_of"] = "last week"
    with pytest.raises(PriceFileError, match=r"prices\.fargate_gb_hour\.as_of"):
        load_price_file(write(tmp_path, document))
    document = packaged_document()
    document["prices"]["fargate_gb_hour"]["source"] = "my notes"
    with pytest.raises(PriceFileError, match=r"prices\.fargate_gb_hour\.source: .*URL"):
        load_price_file(write(tmp_path, document))


def test_not_json_and_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"region": "us-east-1",')
    with pytest.raises(PriceFileError, match="is not valid JSON"):
        load_price_file(path)
    with pytest.raises(PriceFileError, match="expected a JSON object"):
        load_price_file(write(tmp_path, [1, 2]))


def test_unreadable_file() -> None:
    with pytest.raises(PriceFileError, match="cannot read price file"):
        load_price_file("/nonexistent/prices.json")


def test_several_problems_are_one_message(tmp_path: Path) -> None:
    document = packaged_document()
    del document["currency"]
    del document["prices"]["lambda_gb_second"]
    with pytest.raises(PriceFileError) as caught:
        load_price_file(write(tmp_path, document))
    assert "\n" not in str(caught.value)
    assert "1 more problem" in str(caught.value)
