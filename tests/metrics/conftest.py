"""Fixtures for the metrics tests: a device with one sensor of every type, served by a real
katcpx-web (hub and HTTP server on the test's loop), and scrapes parsed with
prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import tornado.httpclient
from prometheus_client.parser import text_string_to_metric_families

from katcpx.sensor import Sensor
from katcpx.server import DeviceServer
from katcpx.web import DeviceHub, DeviceSpec, WebServer

TIMEOUT = 10.0


class Gadget(DeviceServer):
    """One sensor of each KATCP type, all nominal."""

    VERSION_INFO = ("gadget", 1, 0)
    BUILD_INFO = ("gadget", 1, 0, "test")

    def setup_sensors(self) -> None:
        nominal = Sensor.NOMINAL
        self.sensors = {
            s.name: s
            for s in (
                Sensor.integer("count", "A counter", "", default=7, initial_status=nominal),
                Sensor.float("temp", "Temperature", "degC", default=20.5, initial_status=nominal),
                Sensor.boolean("ready", "Ready", "", default=True, initial_status=nominal),
                Sensor.timestamp("started", "Start", "", default=1.7e9, initial_status=nominal),
                Sensor.discrete(
                    "mode", "Mode", "", ["idle", "heat", "cool"], "heat", initial_status=nominal
                ),
                Sensor.lru(
                    "lru", "Line unit", "", default=Sensor.LRU_ERROR, initial_status=nominal
                ),
                Sensor.string("label", "Label", "", default="lab one", initial_status=nominal),
                Sensor.address(
                    "peer", "Peer", "", default=("10.0.0.1", 7147), initial_status=nominal
                ),
            )
        }
        for sensor in self.sensors.values():
            self.add_sensor(sensor)


Sample = tuple[dict[str, str], float]


@dataclass
class Scrape:
    """One parsed /metrics answer: family name -> (type, samples)."""

    families: dict[str, tuple[str, list[Any]]]

    def samples(self, name: str, **labels: str) -> list[Sample]:
        """Samples named `name` whose labels include `labels`."""
        found = []
        for _, samples in self.families.values():
            for s in samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    found.append((s.labels, s.value))
        return found

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one sample matching, or None if there is none."""
        found = self.samples(name, **labels)
        assert len(found) <= 1, found
        return found[0][1] if found else None

    def sensors(self, device: str) -> set[str]:
        """Sensors of `device` that have a status series."""
        return {lab["sensor"] for lab, _ in self.samples("katcp_sensor_status", device=device)}


def parse(text: str) -> Scrape:
    """Parse an exposition with prometheus_client's parser (raises on a malformed one)."""
    families = {}
    for fam in text_string_to_metric_families(text):
        assert fam.name not in families, f"family {fam.name} twice"
        families[fam.name] = (fam.type, list(fam.samples))
    return Scrape(families)


async def fetch(url: str) -> Scrape:
    """GET `url` (a /metrics page served on this loop or elsewhere) and parse it."""
    response = await tornado.httpclient.AsyncHTTPClient().fetch(url, request_timeout=TIMEOUT)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.body.decode())


def fetch_blocking(url: str) -> Scrape:
    """GET `url` from a thread with no loop (prometheus_client's own HTTP server)."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return parse(response.read().decode())


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = TIMEOUT, what: str = ""
) -> Any:
    """Await `check()` until it returns something truthy; fail after `timeout` seconds.

    Metrics are pulled, so there is no event to wait on: each try is a real scrape.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")


async def until_sensor(url: str, device: str, sensor: str) -> Scrape:
    """Scrape `url` until `sensor` of `device` is reported (e.g. after a re-sync)."""

    async def appeared() -> Scrape | None:
        s = await fetch(url)
        return s if sensor in s.sensors(device) else None

    scrape: Scrape = await eventually(appeared, what=f"sensor {sensor} of {device}")
    return scrape


@dataclass
class Web:
    device: Gadget
    web: WebServer

    @property
    def metrics_url(self) -> str:
        return self.web.url + "metrics"


async def start_gadget() -> Gadget:
    """A :class:`Gadget` on a free port, served on the running loop."""
    device = Gadget("127.0.0.1", 0)
    device.set_ioloop()
    device.start()
    await device.until_running(TIMEOUT)
    return device


@pytest.fixture
async def gadget() -> AsyncIterator[Gadget]:
    """A running :class:`Gadget`, stopped after the test."""
    device = await start_gadget()
    try:
        yield device
    finally:
        device.stop()
        await device.until_stopped(TIMEOUT)


@pytest.fixture
async def web() -> AsyncIterator[Web]:
    device = await start_gadget()
    hub = DeviceHub([DeviceSpec("gadget", "127.0.0.1", device.bind_address[1])])
    server = WebServer(hub, "127.0.0.1", 0)
    await server.start()
    try:
        await hub.until_synced(TIMEOUT)
        yield Web(device, server)
    finally:
        await server.stop()
        device.stop()
        await device.until_stopped(TIMEOUT)
