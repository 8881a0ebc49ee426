"""Replay: re-run the pipelines over the changes of a chosen time range, without touching
the live service (`consumer replay`; docs/replay.md).

- `window`: which changes (`--from` by arrival time, `--to` by change time), the time syntax,
  where reading a shard stops, and the two errors.
- `request`: the checked request (pipelines, the replay's own name and lease table, the
  window recorded on it, its shards) and the settings a replay runs with.
- `status`: where each shard stands (the replay's marks on the lease table), when the replay
  is complete, and how a run ended; `progress`: the live line and log lines.
- Stream source: `horizon` (retention and the trim horizon warning), `shard_task` (one
  leased shard, cut off at the window's end), `stream` (one replay worker), `workers`
  (`--workers N` processes).
- `archive`: the archive source (the window's objects, lines back to records, the replay).
- `dry_run` (`--dry-run` and its estimates), `runner` (the whole command).
"""

from consumer.replay.request import PIPELINES, ReplayRequest, Source
from consumer.replay.runner import ReplayOptions, run_replay
from consumer.replay.window import ReplayError, ReplayInputError, ReplayWindow, window_from_input

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
