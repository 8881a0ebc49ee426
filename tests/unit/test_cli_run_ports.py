"""Issue 20.1 and 20.5: `consumer run`'s listening ports. A health port already in use was a
traceback; equal ports were accepted; health and metrics listened on every interface."""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.request
from collections.abc import Iterator

import pytest

from consumer.cli import main
from consumer.settings import SettingsError, load_settings
from consumer.telemetry.health import HealthServer, PortUnavailable, Readiness
from consumer.telemetry.metrics import MetricsReporter


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CONSUMER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CONSUMER_STREAM__NAME", "orders")
    monkeypatch.setenv("CONSUMER_TELEMETRY__EMF", "false")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process (here: a plain socket) is listening on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def ready() -> Readiness:
    return Readiness(True, "ok", {})


def test_a_health_port_in_use_is_one_line_naming_the_setting(busy_port: int) -> None:
    async def start() -> None:
        server = HealthServer(busy_port, ready, host="127.0.0.1")
        try:
            await server.start()
        finally:
            await server.aclose()

    with pytest.raises(PortUnavailable) as refused:
        asyncio.run(start())
    message = str(refused.value)
    assert "\n" not in message
    assert f"telemetry.health_port {busy_port} cannot be bound on 127.0.0.1" in message


def test_run_with_the_health_port_in_use_exits_1_with_one_line(
    busy_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONSUMER_TELEMETRY__HEALTH_PORT", str(busy_port))
    monkeypatch.setenv("CONSUMER_TELEMETRY__BIND_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("CONSUMER_TELEMETRY__LOG_LEVEL", "error")
    # Nothing listens on the discard port: the worker cannot get far before the port fails.
    monkeypatch.setenv("CONSUMER_AWS__ENDPOINT_KINESIS", "http://127.0.0.1:9")
    monkeypatch.setenv("CONSUMER_AWS__ENDPOINT_DYNAMODB", "http://127.0.0.1:9")
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert f"telemetry.health_port {busy_port} cannot be bound" in line


def test_equal_health_and_metrics_ports_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUMER_TELEMETRY__HEALTH_PORT", "9100")
    monkeypatch.setenv("CONSUMER_TELEMETRY__PROMETHEUS_PORT", "9100")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    (line,) = refused.value.lines
    assert "telemetry.prometheus_port and telemetry.health_port are both 9100" in line


def only_on_127_0_0_1(port: int) -> bool:
    """True if `port` answers on 127.0.0.1 but not on 127.0.0.2: Linux routes all of 127/8
    to the loopback interface, so a socket on 0.0.0.0 answers on both, one on 127.0.0.1 only
    on that address."""
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.2", port)) != 0


def test_health_and_metrics_listen_on_the_bind_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUMER_TELEMETRY__BIND_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("CONSUMER_TELEMETRY__PROMETHEUS_PORT", "0")
    settings = load_settings()

    async def serve() -> tuple[list[bool], str]:
        from consumer.telemetry.metrics import MetricsRegistry

        health = HealthServer(0, ready, host=settings.telemetry.bind_address)
        metrics = MetricsReporter(settings, MetricsRegistry())
        await health.start()
        await metrics.start()
        try:
            assert health.bound_port and metrics.bound_port
            url = f"http://127.0.0.1:{health.bound_port}/healthz"
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
            return [
                only_on_127_0_0_1(health.bound_port),
                only_on_127_0_0_1(metrics.bound_port),
            ], body
        finally:
            await metrics.aclose()
            await health.aclose()

    local, body = asyncio.run(serve())
    assert "alive" in body
    assert local == [True, True]


def test_the_default_bind_address_is_every_interface() -> None:
    """The container's health check and Prometheus scrapers reach the task from outside."""
    assert load_settings().telemetry.bind_address == "0.0.0.0"

    async def serve() -> bool:
        health = HealthServer(0, ready)
        await health.start()
        try:
            assert health.bound_port
            return only_on_127_0_0_1(health.bound_port)
        finally:
            await health.aclose()

    assert asyncio.run(serve()) is False
