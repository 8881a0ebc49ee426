"""Issue 20.5: the replication transform hook is user code, and nothing it does may take the
worker down or hold it up. A hook that raises SystemExit/KeyboardInterrupt (BaseException, not
Exception) escaped the sink and the event loop: the worker died. A slow hook ran on the event
loop, stopping every shard (and lease renewals) while it ran, with no bound at all. Now each
call runs in a thread of its own, bounded by pipelines.replication.transform_timeout_s, and
every failure parks that one record.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from consumer.pipeline.processor import Route, ShardPipeline
from consumer.pipeline.replication import ReplicationSection, ReplicationSink, load_transform
from consumer.pipeline.transform_hook import TransformFailed, TransformHook
from consumer.records import ChangeEvent
from consumer.service.assembly import Runtime
from consumer.service.sinks import PipelineClients
from consumer.settings import SettingsError, load_settings
from tests.change_factory import insert
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/orders-dlq"
Hook = Callable[[ChangeEvent, dict[str, Any]], dict[str, Any] | None]


class MemoryReplica:
    """The one DynamoDB call the replication sink makes, accepting every write."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    async def put_item(self, **kwargs: Any) -> dict[str, Any]:
        item = kwargs["Item"]
        self.items[item["pk"]["S"]] = item
        return {}


def raising(error: BaseException, key: str = "bad") -> Hook:
    def hook(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
        if event.keys.python["pk"] == key:
            raise error
        return item

    return hook


def events(*keys: str) -> list[ChangeEvent]:
    return [insert(key, 1_000 + n, n) for n, key in enumerate(keys)]


@pytest.mark.parametrize(
    "error",
    [
        SystemExit(3),
        KeyboardInterrupt(),
        asyncio.CancelledError(),  # raised by the hook's own code, not a cancellation of ours
        GeneratorExit(),
        RuntimeError("nope"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_anything_the_hook_raises_fails_only_its_record(error: BaseException) -> None:
    replica = MemoryReplica()
    sink = ReplicationSink(replica, ReplicationSection(table="replica"), transform=raising(error))
    failures = await sink.write(events("good", "bad", "fine"))
    assert list(failures) == [1]
    assert not failures[1].retryable
    assert f"transform failed: {type(error).__name__}" in str(failures[1])
    assert sorted(replica.items) == ["fine", "good"]


async def test_a_hook_raising_system_exit_is_parked_and_the_shard_moves_on() -> None:
    """Through the shard pipeline, as the worker runs it: the record reaches the DLQ with the
    hook's error, the others are applied and the checkpoint passes all three."""
    replica = MemoryReplica()
    sink = ReplicationSink(
        replica, ReplicationSection(table="replica"), transform=raising(SystemExit("hook quit"))
    )
    dlq, checkpointer = MemoryDlq(), MemoryCheckpointer()
    pipeline = ShardPipeline("stream", "shardId-000000000000", [Route(sink)], dlq, checkpointer)
    batch = events("good", "bad", "fine")
    await pipeline._deliver(Route(sink), batch)
    assert [parked.sequence_number for parked in dlq.parked] == [batch[1].position.sequence_number]
    assert dlq.parked[0].error == "transform failed: SystemExit: hook quit"
    assert sorted(replica.items) == ["fine", "good"]


async def test_a_slow_hook_does_not_stop_the_event_loop() -> None:
    """Other shards (and lease renewals) run on the same loop: they keep going meanwhile."""

    def slow(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.4)
        return item

    hook = TransformHook(slow, timeout_s=5)
    ticks = 0

    async def other_shard() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(other_shard())
    try:
        (event,) = events("slow")
        assert await hook(event, {"pk": {"S": "slow"}}) == {"pk": {"S": "slow"}}
    finally:
        ticking.cancel()
    assert ticks >= 10  # ~40 while the hook slept; 0 when it ran on the loop


async def test_a_hook_past_its_time_parks_its_record_and_the_rest_go_on() -> None:
    release = threading.Event()

    def hangs_on_slow(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any]:
        if event.keys.python["pk"] == "slow":
            release.wait(10)
        return item

    replica = MemoryReplica()
    settings = ReplicationSection(table="replica", transform_timeout_s=0.3)
    sink = ReplicationSink(replica, settings, transform=hangs_on_slow)
    started = time.monotonic()
    try:
        failures = await sink.write(events("good", "slow", "fine"))
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert list(failures) == [1] and not failures[1].retryable
    assert "did not return within 0.3 s" in str(failures[1])
    assert "transform_timeout_s" in str(failures[1])
    assert sorted(replica.items) == ["fine", "good"]
    assert elapsed < 3


async def test_calls_stuck_past_their_time_are_bounded_then_the_hook_is_called_again() -> None:
    release = threading.Event()
    calls: list[str] = []

    def hangs(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any]:
        calls.append(str(event.keys.python["pk"]))
        if event.keys.python["pk"] == "hang":
            release.wait(10)
        return item

    hook = TransformHook(hangs, timeout_s=0.2, max_stuck=1)
    stuck, next_one, later = events("hang", "next", "later")
    with pytest.raises(TransformFailed, match=r"did not return within 0\.2 s"):
        await hook(stuck, {})
    with pytest.raises(TransformFailed, match="1 earlier calls are still running") as busy:
        await hook(next_one, {})
    assert busy.value.retryable  # not that record's fault: the shard waits, nothing parked
    assert calls == ["hang"]  # not called while the stuck call still runs
    release.set()
    for _ in range(500):  # the late return is seen on the loop
        if not hook.stuck:
            break
        await asyncio.sleep(0.01)
    assert await hook(later, {"x": {"S": "y"}}) == {"x": {"S": "y"}}
    assert calls == ["hang", "later"]


async def test_calls_run_one_at_a_time_across_shards() -> None:
    """As on the event loop before: a hook need not be thread-safe."""
    active = 0
    most = 0
    guard = threading.Lock()

    def counting(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any]:
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        time.sleep(0.01)
        with guard:
            active -= 1
        return item

    hook = TransformHook(counting, timeout_s=5)
    shards = [
        ReplicationSink(MemoryReplica(), ReplicationSection(table="replica"), transform=hook)
        for _ in range(3)
    ]
    results = await asyncio.gather(
        *(sink.write(events(*(f"k{n}-{i}" for i in range(6)))) for n, sink in enumerate(shards))
    )
    assert results == [{}, {}, {}]
    assert most == 1


@pytest.mark.parametrize(
    ("returned", "expected"),
    [("not an item", "returned str"), ([], "returned list"), (7, "returned int")],
)
async def test_a_hook_returning_something_else_than_an_item_fails_its_record(
    returned: object, expected: str
) -> None:
    def wrong(event: ChangeEvent, item: dict[str, Any]) -> Any:
        return returned

    replica = MemoryReplica()
    sink = ReplicationSink(replica, ReplicationSection(table="replica"), transform=wrong)
    failures = await sink.write(events("a"))
    assert list(failures) == [0] and expected in str(failures[0])
    assert replica.items == {}


async def test_an_async_hook_is_named_as_unsupported() -> None:
    async def coroutine_hook(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any]:
        return item

    sink = ReplicationSink(
        MemoryReplica(),
        ReplicationSection(table="replica"),
        transform=coroutine_hook,  # type: ignore[arg-type]  # the mistake under test
    )
    failures = await sink.write(events("a"))
    assert "async def hook is not supported" in str(failures[0])


def test_an_async_hook_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "async_hook_module.py"
    module.write_text("async def hook(event, item):\n    return item\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="is an async def: it must be a plain function"):
        load_transform("async_hook_module:hook")


async def test_cancelling_the_caller_still_cancels() -> None:
    """The worker's shutdown cancels shard tasks: that must not be mistaken for the hook's
    failure (nor swallowed)."""
    release = threading.Event()

    def waits(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any]:
        release.wait(10)
        return item

    hook = TransformHook(waits, timeout_s=5)
    (event,) = events("a")
    task = asyncio.create_task(hook(event, {}))
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        release.set()


def test_a_module_that_exits_while_importing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exiting_hook_module.py").write_text("raise SystemExit('bye')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="failed while importing: SystemExit: bye"):
        load_transform("exiting_hook_module:hook")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "901"])
def test_the_timeout_setting_is_bounded(value: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(
            stream={"name": "orders"},
            pipelines={
                "replication": {
                    "enabled": True,
                    "table": "orders-replica",
                    "transform_timeout_s": value,
                }
            },
            dlq={"queue_url": QUEUE_URL},
        )
    assert any("transform_timeout_s" in line for line in error.value.lines)


def test_the_sink_reads_the_replication_section_itself() -> None:
    settings = load_settings(
        stream={"name": "orders"},
        pipelines={
            "replication": {"enabled": True, "table": "orders-replica", "transform_timeout_s": 2}
        },
        dlq={"queue_url": QUEUE_URL},
    )
    clients = PipelineClients(replica_dynamodb=MemoryReplica())
    (route,) = Runtime(settings, AsyncExitStack(), clients).routes("shardId-0")
    assert isinstance(route.sink, ReplicationSink)
    # No hand-copied settings class in between: the section with its checks, as loaded.
    assert route.sink.settings is settings.pipelines.replication
    assert route.sink.settings.transform_timeout_s == 2


def test_checking_the_setting_runs_no_code_of_the_hook_or_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the settings (what `consumer dlq list` does) checks that the hook can be found.
    `importlib.util.find_spec("pkg.hooks")` imports `pkg`: a package whose __init__ imports
    its hooks (or raises SystemExit, here) ran them, or ended the command silently."""
    package = tmp_path / "hookpkg_never_imported"
    package.mkdir()
    (package / "__init__.py").write_text("raise SystemExit('the hook package was imported')\n")
    (package / "hooks.py").write_text("def redact(event, item):\n    return item\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = load_settings(
        stream={"name": "orders"},
        pipelines={
            "replication": {
                "enabled": True,
                "table": "orders-replica",
                "transform": "hookpkg_never_imported.hooks:redact",
            }
        },
        dlq={"queue_url": QUEUE_URL},
    )
    assert settings.pipelines.replication.transform == "hookpkg_never_imported.hooks:redact"
    assert "hookpkg_never_imported" not in sys.modules
    with pytest.raises(SettingsError, match="cannot be imported"):
        load_settings(
            stream={"name": "orders"},
            pipelines={
                "replication": {
                    "enabled": True,
                    "table": "orders-replica",
                    "transform": "hookpkg_never_imported.missing:redact",
                }
            },
            dlq={"queue_url": QUEUE_URL},
        )
    assert "hookpkg_never_imported" not in sys.modules


async def test_after_a_timeout_the_next_call_runs_at_once_on_another_thread() -> None:
    release = threading.Event()
    threads: list[str] = []

    def hangs_first(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any]:
        threads.append(str(threading.get_ident()))
        if event.keys.python["pk"] == "hang":
            release.wait(10)
        return item

    hook = TransformHook(hangs_first, timeout_s=0.2)
    stuck, following = events("hang", "next")
    try:
        with pytest.raises(TransformFailed):
            await hook(stuck, {})
        started = time.monotonic()
        assert await hook(following, {"a": {"S": "b"}}) == {"a": {"S": "b"}}
        assert time.monotonic() - started < 0.2  # not queued behind the stuck call
    finally:
        release.set()
    assert len(set(threads)) == 2 and hook.stuck == 1


async def test_an_idle_hook_thread_ends_and_the_next_call_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hooks built per invocation (the Lambda handler, dlq replay) leave no threads behind."""
    from consumer.pipeline import transform_hook

    monkeypatch.setattr(transform_hook._HookThread, "IDLE_S", 0.05)

    def hook_threads() -> int:
        return sum(thread.name == "transform-hook" for thread in threading.enumerate())

    before = hook_threads()
    hook = TransformHook(lambda event, item: item, timeout_s=5)
    (event,) = events("a")
    assert await hook(event, {}) == {}
    for _ in range(200):
        if hook_threads() == before:
            break
        await asyncio.sleep(0.01)
    assert hook_threads() == before
    assert await hook(event, {"x": {"N": "1"}}) == {"x": {"N": "1"}}
