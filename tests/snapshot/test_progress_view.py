"""The backfill's progress on a terminal (a bar redrawn in place) and elsewhere (log lines)."""

from __future__ import annotations

import io

import structlog

from consumer.snapshot.progress import ProgressFigures, ProgressView

HALF = ProgressFigures(500, 2_000_000, 3, 8, 100.0, 1000)


def test_on_a_terminal_the_bar_is_redrawn_in_place_and_notes_go_above_it() -> None:
    out = io.StringIO()
    view = ProgressView(out, tty=True)
    view.update(HALF)
    view.update(ProgressFigures(1000, 4_000_000, 8, 8, 100.0, 1000))
    view.note("export arn:x: 3 data files")
    view.finish()
    text = out.getvalue()
    first, second = text.split("\r\x1b[K")[1:3]
    assert first == "[############------------] " + (
        "500 items (50%), 2.0 MB, 3/8 parts, 100 items/s, ETA 0m05s"
    )
    assert second.startswith("[########################] 1000 items (100%)")
    assert "\r\x1b[Kbackfill: export arn:x: 3 data files\n" in text  # the bar is cleared first
    assert view.poll_s == 1.0


def test_elsewhere_progress_is_a_log_line_per_interval_with_the_figures() -> None:
    out = io.StringIO()
    view = ProgressView(out, tty=False, log_interval_s=3600)
    with structlog.testing.capture_logs() as logs:
        view.update(HALF)
        view.update(HALF)  # within the interval: no second line
    assert out.getvalue() == ""
    assert [entry["event"] for entry in logs] == ["backfill.progress"]
    assert logs[0]["items"] == 500 and logs[0]["parts_done"] == 3 and logs[0]["eta_s"] == 5
    assert view.poll_s == 3600
