"""LOCAL ONLY: `python -m tests.chaos [--short] [--seed N] [--mode efo|polling|both]`
(see `tests.chaos`)."""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import cast

from tests.chaos.run import Mode, run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the short form (under 3 minutes)")
    parser.add_argument("--seed", type=int, default=None, help="the fault schedule's seed")
    parser.add_argument(
        "--mode",
        choices=["efo", "polling", "both"],
        default=None,
        help="the workers' reader (default: both in the full form, polling in the short one)",
    )
    parser.add_argument(
        "--keep-dir", type=Path, default=None, help="work in this directory and keep it"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    mode = args.mode or ("polling" if args.short else "both")
    modes: tuple[Mode, ...] = ("efo", "polling") if mode == "both" else (cast(Mode, mode),)
    return run_chaos(seed, args.short, args.keep_dir, modes)


if __name__ == "__main__":
    sys.exit(main())
