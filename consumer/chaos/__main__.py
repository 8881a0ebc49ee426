"""LOCAL ONLY: `python -m consumer.chaos [--short] [--seed N]` (see `consumer.chaos`)."""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from consumer.chaos.run import run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumer.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the short form (under 3 minutes)")
    parser.add_argument("--seed", type=int, default=None, help="the fault schedule's seed")
    parser.add_argument(
        "--keep-dir", type=Path, default=None, help="work in this directory and keep it"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    return run_chaos(seed, args.short, args.keep_dir)


if __name__ == "__main__":
    sys.exit(main())
