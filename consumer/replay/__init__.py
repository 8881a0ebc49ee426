"""Replay: re-run the pipelines over the changes of a chosen time range, without touching
the live service (`consumer replay`; docs/replay.md; the modules: README.md, Architecture).
"""

from consumer.replay.request import PIPELINES, ReplayRequest, Source
from consumer.replay.runner import ReplayOptions, run_replay
from consumer.replay.window import ReplayWindow

__all__ = ["PIPELINES", "ReplayOptions", "ReplayRequest", "ReplayWindow", "Source", "run_replay"]
