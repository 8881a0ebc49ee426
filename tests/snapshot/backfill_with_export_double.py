"""`consumer backfill` in a process whose exports go to the export double (tests only):
`python -m tests.snapshot.backfill_with_export_double --table T ...`."""

from __future__ import annotations

import sys
from functools import partial

import consumer.cli.backfill_cmd as backfill_cmd
from consumer.cli import main
from consumer.snapshot.backfill import Backfill
from tests.snapshot.export_double import LocalExports

if __name__ == "__main__":
    # The CLI builds Backfill by name; this process swaps in one bound to the export double.
    backfill_cmd.Backfill = partial(  # type: ignore[misc]  # a partial stands in for the class
        Backfill, export_api=LocalExports.factory(), export_poll_s=0.3
    )
    sys.exit(main(["backfill", *sys.argv[1:]]))
