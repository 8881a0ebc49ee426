"""Issue 20.3/20.5 ("README's Settings section states each setting's valid range"): the
settings that took any text now follow the AWS rule the README states, checked at start with
one line naming the setting, instead of failing at the first AWS call (or never):

- stream.consumer_name: Kinesis RegisterStreamConsumer ConsumerName, 1-128 of [a-zA-Z0-9_.-]
  (botocore's kinesis service model, shape ConsumerName);
- stream.source_table: a DynamoDB table name, 3-255 of [a-zA-Z0-9_.-];
- telemetry.emf_namespace: a CloudWatch namespace, 1-255 characters, not starting with ':'
  (botocore's cloudwatch model, shape Namespace) nor "AWS/" (reserved for AWS services:
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html).
"""

from __future__ import annotations

from typing import Any

import pytest

from consumer.settings import SettingsError, load_settings

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/orders-dlq"


def settings_with(section: str, name: str, value: Any) -> Any:
    return load_settings(
        stream={"name": "orders", **({name: value} if section == "stream" else {})},
        **({section: {name: value}} if section != "stream" else {}),
        dlq={"queue_url": QUEUE_URL},
    )


@pytest.mark.parametrize(
    ("section", "name", "value"),
    [
        ("stream", "consumer_name", "orders cdc"),
        ("stream", "consumer_name", "x" * 129),
        ("stream", "consumer_name", ""),
        ("stream", "source_table", "ab"),
        ("stream", "source_table", "orders/table"),
        ("telemetry", "emf_namespace", "AWS/Kinesis"),
        ("telemetry", "emf_namespace", ":Orders"),
        ("telemetry", "emf_namespace", ""),
        ("telemetry", "emf_namespace", "n" * 256),
        ("telemetry", "emf_namespace", "Orders\u00e9"),
    ],
)
def test_values_outside_the_aws_rule_are_one_line_naming_the_setting(
    section: str, name: str, value: str
) -> None:
    with pytest.raises(SettingsError) as error:
        settings_with(section, name, value)
    (line,) = error.value.lines
    assert f"{section}.{name}" in line


@pytest.mark.parametrize(
    ("section", "name", "value"),
    [
        ("stream", "consumer_name", "orders-cdc_v2.1"),
        ("stream", "consumer_name", "x" * 128),
        ("stream", "source_table", "orders"),
        ("telemetry", "emf_namespace", "DdbCdcConsumer/orders prod"),
        ("telemetry", "emf_namespace", "n" * 255),
    ],
)
def test_values_within_the_rule_are_taken(section: str, name: str, value: str) -> None:
    settings = settings_with(section, name, value)
    assert getattr(getattr(settings, section), name) == value

