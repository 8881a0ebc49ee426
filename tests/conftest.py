"""Shared fixtures. The local stack (moto server + kinesis-mock) starts once per session, on
free loopback ports, and is always stopped, also when tests fail or are interrupted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from consumer.aws import AwsEndpoints
from consumer.local.stack import LocalStack, LocalStackState


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackState]:
    stack = LocalStack(Path(tmp_path_factory.mktemp("local-stack")))
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def endpoints(local_stack: LocalStackState) -> AwsEndpoints:
    return local_stack.endpoints()


@pytest.fixture
def unique_name() -> str:
    """A fresh resource name per test, so tests sharing the stack never collide."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    """Commands under test configure structlog globally; undo that after every test."""
    yield
    structlog.reset_defaults()


# Tests that assert timings (failover bounds, planned moves without duplicates) or run many
# worker processes: `make test` runs them after the parallel phase, alone on the machine, so
# CPU contention from other test workers cannot make a healthy heartbeat look late.
SERIAL_MODULES = frozenset(
    {
        "test_leases_coordinators.py",
        "test_leases_processes.py",
        "test_chaos.py",
        "test_efo_takeover.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)
