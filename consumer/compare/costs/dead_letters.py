"""The SQS dead-letter queue both designs park failed records in."""

from __future__ import annotations

from consumer.compare.costs.breakdown import CostLine, count, usd
from consumer.compare.costs.prices import PriceSheet
from consumer.compare.costs.units import MILLION


def dlq_line(
    failed_records: float, requests_per_record: float, prices: PriceSheet, what: str
) -> CostLine:
    """Requests to park `failed_records` a month and later drain them (receive + delete).

    `requests_per_record` counts SQS's billing: each 64 KB chunk of a payload is a request,
    so a message is sent in n chunks, received in n and deleted in 1: 2n + 1.
    """
    price = prices.prices.sqs_requests_million.value
    requests = failed_records * requests_per_record
    return CostLine(
        component="SQS dead-letter queue",
        usd_per_month=requests / MILLION * price,
        quantity=requests,
        unit="requests",
        price_key="sqs_requests_million",
        basis=(
            f"{count(failed_records)} failed records ({what}) x {count(requests_per_record)} "
            f"requests (send, receive, delete) x {usd(price)}/M"
        ),
    )
