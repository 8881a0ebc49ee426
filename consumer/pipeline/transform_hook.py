"""Running the user's replication transform hook safely: off the event loop, bounded in time,
and with every way it can fail turned into that one record's failure, `TransformFailed`
(README: The transform hook). Python cannot kill a thread: an overrunning call runs on, its
result dropped, and later calls go to a new thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import threading
from collections.abc import Callable
from typing import Any

from consumer.records import ChangeEvent

# Takes the change and the item about to be written (typed JSON, client view) and returns
# the item to write, or None to skip this change for the replica.
Transform = Callable[[ChangeEvent, dict[str, Any]], dict[str, Any] | None]

DEFAULT_TIMEOUT_S = 10.0
MAX_STUCK = 4

_Outcome = tuple[dict[str, Any] | None, BaseException | None]


class TransformFailed(Exception):
    """The hook failed for this record. The message may quote the hook's error text: it goes
    to the dead-letter message, never a log line. `retryable`: not the record's fault (stuck
    calls saturate the hook): the shard waits instead of parking an innocent record."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class TransformHook:
    """A loaded hook with its time bound. One instance may serve every shard of a worker."""

    def __init__(
        self, function: Transform, timeout_s: float = DEFAULT_TIMEOUT_S, max_stuck: int = MAX_STUCK
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"transform timeout must be above 0 seconds, got {timeout_s}")
        self.function = function
        self.timeout_s = timeout_s
        self._max_stuck = max_stuck
        self._lock = asyncio.Lock()  # binds to a loop only on first contended use
        self.stuck = 0  # calls still running past their time
        self._thread: _HookThread | None = None  # started by the first call

    async def __call__(self, event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
        async with self._lock:
            if self.stuck >= self._max_stuck:
                raise TransformFailed(
                    f"transform hook unavailable: {self.stuck} earlier calls are still running "
                    f"past the {self.timeout_s:g} s timeout (pipelines.replication."
                    "transform_timeout_s)",
                    retryable=True,
                )
            done = self._start(event, item)
            try:
                result, error = await asyncio.wait_for(asyncio.shield(done), self.timeout_s)
            except TimeoutError:
                self.stuck += 1
                done.add_done_callback(self._returned_late)
                if self._thread is not None:  # stuck in this call: it ends once that returns,
                    self._thread.finish()  # and later calls go to a new thread
                    self._thread = None
                raise TransformFailed(
                    f"transform hook did not return within {self.timeout_s:g} s "
                    "(pipelines.replication.transform_timeout_s)"
                ) from None
        if error is not None:
            raise TransformFailed(f"transform failed: {type(error).__name__}: {error}") from error
        if result is not None and not isinstance(result, dict):
            raise TransformFailed(
                f"transform failed: it returned {type(result).__name__}, expected a dict "
                "(the item, DynamoDB typed JSON) or None (skip); an async def hook is not "
                "supported"
            )
        return result

    def _start(self, event: ChangeEvent, item: dict[str, Any]) -> asyncio.Future[_Outcome]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_Outcome] = loop.create_future()

        def settle(outcome: _Outcome) -> None:
            if not done.done():
                done.set_result(outcome)

        def call() -> None:
            outcome: _Outcome
            try:
                result = self.function(event, item)
                if inspect.iscoroutine(result):
                    result.close()  # never awaited: close it rather than leak a warning
                outcome = (result, None)
            except BaseException as error:  # user code: every failure is the record's
                outcome = (None, error)
            # RuntimeError: the loop has closed meanwhile (a call that overran the shutdown).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, outcome)

        if self._thread is None or not self._thread.submit(call):
            self._thread = _HookThread()
            self._thread.submit(call)
        return done

    def _returned_late(self, _: asyncio.Future[_Outcome]) -> None:
        self.stuck -= 1


class _HookThread:
    """A daemon thread running hook calls in turn (a thread per call costs ~10x more). Daemon,
    unlike an executor's threads (joined at exit), so a stuck call cannot hold up the exit;
    it ends after IDLE_S without calls, so per-invocation hooks leave no threads behind."""

    IDLE_S = 30.0

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ended = False
        threading.Thread(target=self._run, name="transform-hook", daemon=True).start()

    def submit(self, job: Callable[[], None]) -> bool:
        """Queues `job`; False if this thread has ended (idle) and will run nothing more."""
        with self._lock:
            if self._ended:
                return False
            self._jobs.put(job)
            return True

    def finish(self) -> None:
        """Ends the thread after the jobs already queued."""
        with self._lock:
            if not self._ended:
                self._jobs.put(None)

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.IDLE_S)
            except queue.Empty:
                with self._lock:  # nothing can be queued between this check and the end
                    if self._jobs.empty():
                        self._ended = True
                        return
                continue
            if job is None:
                with self._lock:
                    self._ended = True
                return
            job()
