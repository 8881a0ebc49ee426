"""The two ways a replay refuses to go on."""

from __future__ import annotations


class ReplayInputError(ValueError):
    """The request is wrong (a bad time, an unknown pipeline, --to before --from...).

    The message is one line naming the option and what to do; the CLI prints it and exits 2.
    """


class ReplayError(RuntimeError):
    """The replay cannot run or finish (the stream or archive is missing, a shard stopped)."""
