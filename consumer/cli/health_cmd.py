"""`consumer health`: the container HEALTHCHECK (asks the running worker's /readyz or /healthz)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import urllib.error
import urllib.request

from consumer.cli.options import port_number, positive_seconds


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser("health", help="check the local worker's health endpoint")
    parser.add_argument("--port", type=port_number, default=8080, help="health port (default 8080)")
    parser.add_argument(
        "--host",
        type=_ip_address,
        default="127.0.0.1",
        help="address to ask (default 127.0.0.1; telemetry.bind_address if set to another)",
    )
    parser.add_argument(
        "--live", action="store_true", help="only check that it is alive (/healthz), not ready"
    )
    parser.add_argument("--timeout", type=positive_seconds, default=3.0, help="seconds (default 3)")
    parser.set_defaults(handler=run)


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def run(args: argparse.Namespace) -> int:
    path = "/healthz" if args.live else "/readyz"
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as error:
        print(error.read().decode() or f"{url}: HTTP {error.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"consumer health: {url} is not answering: {error}", file=sys.stderr)
        return 1
