"""A replay's window, recorded on its lease table, so a rerun can only continue the same one.

A replay's checkpoints cover records its `--to` filter skipped. Resuming them under another
window would silently lose those changes: run `--from X --to T3`, then `--from X` again
without `--to`, and the changes made after T3 were read, skipped and checkpointed by the first
run, so the second never applies them. So the lease table carries its window (from, to in
microseconds, grace, pipelines, source) as a table tag (`consumerReplayWindow`: tags are
invisible to the lease code, which reads items), and a request under an existing name:

- with the same window resumes;
- without `--to`, when the recorded replay was also "up to now" and is otherwise the same,
  resumes the recorded window (a rerun of an interrupted replay "up to now" continues up to
  the *first* run's now; later changes are the live service's, as they always were);
- otherwise is refused with one line naming the existing replay and how to resume or remove it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from botocore.exceptions import ClientError

from checkpoints.retry import error_code
from consumer.replay.errors import ReplayInputError
from consumer.replay.request import ReplayRequest
from consumer.replay.times import iso_us

TAG = "consumerReplayWindow"


@dataclass(frozen=True)
class RecordedWindow:
    from_ms: int | None
    to_us: int
    grace_ms: int
    pipelines: tuple[str, ...]
    source: str
    to_given: bool = True  # False: the replay was "up to now" (no --to)

    @classmethod
    def of(cls, request: ReplayRequest, to_given: bool = True) -> RecordedWindow:
        window = request.window
        return cls(
            window.from_ms,
            window.to_us,
            window.grace_ms,
            tuple(sorted(request.pipelines)),
            request.source.value,
            to_given,
        )

    def tag_value(self) -> str:
        fields = [self.from_ms, self.to_us, self.grace_ms, list(self.pipelines), self.source]
        return orjson.dumps([*fields, self.to_given]).decode()

    @classmethod
    def from_tag(cls, text: str) -> RecordedWindow:
        from_ms, to_us, grace_ms, pipelines, source, to_given = orjson.loads(text)
        return cls(
            from_ms, int(to_us), int(grace_ms), tuple(pipelines), str(source), bool(to_given)
        )

    def same_window(self, other: RecordedWindow) -> bool:
        return replace(self, to_given=other.to_given) == other

    def describe(self) -> str:
        start = "the trim horizon" if self.from_ms is None else iso_us(self.from_ms * 1000)
        return (
            f"from {start} to {iso_us(self.to_us)} into {', '.join(self.pipelines)} "
            f"(source {self.source})"
        )


async def recorded_window(client: Any, table: str) -> tuple[str, RecordedWindow | None] | None:
    """(table ARN, its recorded window or None) for an existing lease table; None if absent."""
    try:
        description = await client.describe_table(TableName=table)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise
    arn = str(description["Table"]["TableArn"])
    tags = await client.list_tags_of_resource(ResourceArn=arn)
    for tag in tags.get("Tags", []):
        if tag.get("Key") == TAG:
            return arn, RecordedWindow.from_tag(str(tag["Value"]))
    return arn, None


def reconcile(
    request: ReplayRequest, recorded: RecordedWindow | None, explicit_to: bool
) -> ReplayRequest:
    """The request to run against an existing lease table (see the module docstring)."""
    wanted = RecordedWindow.of(request, explicit_to)
    if recorded is not None and recorded.same_window(wanted):
        return request
    remove = (
        "resume it with the same options, pick another --replay-name, or remove it "
        f"(aws dynamodb delete-table --table-name {request.lease_table})"
    )
    if recorded is None:
        raise ReplayInputError(
            f"replay {request.name} already has a lease table ({request.lease_table}) with no "
            f"recorded window, so it cannot be resumed safely; {remove}"
        )
    up_to_now = not explicit_to and not recorded.to_given
    if up_to_now and replace(recorded, to_us=wanted.to_us, grace_ms=wanted.grace_ms).same_window(
        wanted
    ):
        window = replace(
            request.window,
            to_ms=recorded.to_us // 1000,
            to_extra_us=recorded.to_us % 1000,
            grace_ms=recorded.grace_ms,
        )
        return replace(request, window=window)
    raise ReplayInputError(
        f"replay {request.name} exists for another window: {recorded.describe()}; this "
        f"request is {wanted.describe()}. Its checkpoints cover changes that window skipped, "
        f"so it cannot serve this one: {remove}"
    )


async def record_window(
    client: Any, table: str, request: ReplayRequest, to_given: bool = True
) -> None:
    """Tags a (new) lease table with the request's window."""
    found = await recorded_window(client, table)
    if found is None:
        return
    arn, recorded = found
    if recorded is None:
        await client.tag_resource(
            ResourceArn=arn,
            Tags=[{"Key": TAG, "Value": RecordedWindow.of(request, to_given).tag_value()}],
        )
