"""`consumer local up|down|status`: the embedded local stack, detached, for manual use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consumer.local import stack


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "local", help="start, stop or inspect the local stack (moto server + kinesis-mock)"
    )
    actions = parser.add_subparsers(dest="local_action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start the stack in the background")
    up.add_argument("--moto-port", type=int, help="default: a free port")
    up.add_argument("--kinesis-port", type=int, help="default: a free port")
    actions.add_parser("down", help="stop the stack and every process it started")
    actions.add_parser("status", help="print the endpoints of the running stack")
    for action in actions.choices.values():
        action.add_argument(
            "--state-dir", type=Path, default=stack.DEFAULT_STATE_DIR, help=argparse.SUPPRESS
        )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    if args.local_action == "up":
        try:
            state = stack.up(state_dir, moto_port=args.moto_port, kinesis_port=args.kinesis_port)
        except stack.LocalStackError as error:
            print(str(error), file=sys.stderr)
            return 1
        _print_state(state)
        return 0
    if args.local_action == "down":
        stopped = stack.down(state_dir)
        print("local stack stopped" if stopped else "local stack was not running")
        return 0
    running = stack.read_state(state_dir)
    if running is None or not stack.state_is_running(running):
        print("local stack: not running")
        return 3
    _print_state(running)
    return 0


def _print_state(state: stack.LocalStackState) -> None:
    services = "(DynamoDB, DynamoDB Streams, S3, SQS)"
    print(f"moto server   {state.moto_url}  {services}  pid {state.moto_pid}")
    print(f"kinesis-mock  {state.kinesis_url}  (Kinesis, plain HTTP)  pid {state.kinesis_pid}")
    print(f"logs          {state.log_dir}")
