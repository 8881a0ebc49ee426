"""Replay: re-run the pipelines over the changes of a chosen time range, without touching
the live service (`consumer replay`; docs/replay.md).

- `window`: which changes (`--from` by arrival time, `--to` by change time) and where reading
  a shard stops; `times`: the time syntax.
- `request`: the checked request (pipelines, the replay's own name and lease table) and the
  settings a replay runs with.
- Stream source: `shards` (ListShards FROM_TIMESTAMP), `horizon` (retention and the trim
  horizon warning), `shard_task` (one leased shard, cut off at the window's end), `marks` and
  `status` (progress and completion, shared by all workers through the lease table),
  `stream` (one replay worker), `workers` (`--workers N` processes).
- Archive source: `archive_index` (the objects of the window), `archive_lines` (lines back
  to records), `archive` (the replay).
- `progress` (the live line and log lines), `dry_run` and `estimate` (`--dry-run`), `runner`
  (the whole command), `outcome`, `errors`.
"""

from consumer.replay.errors import ReplayError, ReplayInputError
from consumer.replay.request import PIPELINES, ReplayRequest, Source
from consumer.replay.runner import ReplayOptions, run_replay
from consumer.replay.window import ReplayWindow, window_from_input

__all__ = [
    "PIPELINES",
    "ReplayError",
    "ReplayInputError",
    "ReplayOptions",
    "ReplayRequest",
    "ReplayWindow",
    "Source",
    "run_replay",
    "window_from_input",
]
