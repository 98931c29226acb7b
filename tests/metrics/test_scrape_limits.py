"""Scrape time limits, sync durations, bounded string series and /metrics HTTP details.

Each test reproduces a defect a user found (timeouts ignored, sync time growing with
uptime, unbounded string series, no gzip/HEAD/name[]) against real processes and sockets.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import sys
import time

import tornado.httpclient

from katcpx.sensor import Sensor
from katcpx.web import DeviceHub, DeviceSpec, WebServer

from .conftest import TIMEOUT, Gadget, Web, eventually, fetch, parse, start_gadget, until_sensor
from .procs import ROW, Proc, start_exporter


async def start_device(name: str = "psu") -> tuple[Proc, int]:
    """One simulated device (``katcpx-sim NAME --port 0``) in its own process."""
    sim = await Proc.start(
        "katcpx-sim", sys.executable, "-m", "katcpx_devices.sim", name, "--port", "0"
    )
    while True:
        m = ROW.match(await sim.readline())
        if m and m.group(1) == name:
            return sim, int(m.group(3))


async def output(proc: Proc) -> str:
    """Everything `proc` wrote (call once it has exited)."""
    assert proc.proc.stdout is not None
    rest = await asyncio.wait_for(proc.proc.stdout.read(), TIMEOUT)
    return "".join(proc.lines) + rest.decode(errors="replace")


async def get(url: str, method: str = "GET", **headers: str) -> tornado.httpclient.HTTPResponse:
    return await tornado.httpclient.AsyncHTTPClient().fetch(
        url, method=method, headers=headers, decompress_response=False, request_timeout=TIMEOUT
    )


async def test_timeout_bounds_a_scrape_with_a_frozen_device() -> None:
    """--timeout 0.5: a device stopped with SIGSTOP costs a scrape 0.5 s, not 5 s, and the
    other device still answers."""
    sim, port = await start_device()
    healthy = await start_gadget()
    devices = {"psu": port, "gadget": healthy.bind_address[1]}
    exporter, url = await start_exporter(devices, "--timeout", "0.5")
    try:

        async def both_up() -> object:
            s = await fetch(url)
            return all(s.value("katcp_device_up", device=d) == 1 for d in devices)

        await eventually(both_up, what="both devices up")
        os.kill(sim.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            scrape = await fetch(url)
            elapsed = time.monotonic() - started
        finally:
            os.kill(sim.proc.pid, signal.SIGCONT)
        assert elapsed < 2.0, f"scrape took {elapsed:.2f} s with --timeout 0.5"
        assert scrape.value("katcp_device_up", device="psu") == 0
        assert scrape.value("katcp_device_up", device="gadget") == 1
    finally:
        assert await exporter.stop() == 0
        await sim.stop()
        healthy.stop()
    log = await output(exporter)
    assert "katcp.metrics: reading the sensors of psu at 127.0.0.1:" in log, log
    assert "no ?sensor-value reply within 0.5 s" in log, log
    assert "metrics: metrics:" not in log


async def test_sync_seconds_time_the_last_sync_only(web: Web) -> None:
    """After #interface-changed, the sync time is the re-sync's, not time since connecting."""
    res = web.web.hub.resource("gadget")
    connected = time.monotonic()
    # Let real time pass with real scrapes, so that "since connection" would be obvious.
    while time.monotonic() - connected < 0.5:
        await fetch(web.metrics_url)
    web.device.add_sensor(
        Sensor.float("pressure", "Pressure", "Pa", default=1.0, initial_status=Sensor.NOMINAL)
    )

    scrape = await until_sensor(web.metrics_url, "gadget", "pressure")
    assert res.synced
    for value in (
        scrape.value("katcp_device_sync_seconds", device="gadget"),
        scrape.value("katcpx_resource_sync_seconds", resource="gadget"),
    ):
        assert value is not None and 0 < value < 0.4, scrape.samples("katcp_device_sync_seconds")


async def test_long_string_values_get_no_series(web: Web) -> None:
    """String values longer than 64 characters (e.g. JSON that keeps changing) would make a
    new series at every change: they get none; status and metadata stay."""
    label = web.device.sensors["label"]
    label.set_value('{"az": 10.123, "el": 45.678, "remaining": 12.25, "target": "Moon", "n": 1}')
    scrape = await fetch(web.metrics_url)
    assert scrape.samples("katcp_sensor_string_info", sensor="label") == []
    assert scrape.value("katcp_sensor_status", sensor="label", status="nominal") == 1
    assert scrape.samples("katcp_sensor_info", sensor="label")
    label.set_value("x" * 64)
    scrape = await fetch(web.metrics_url)
    assert [lab["value"] for lab, _ in scrape.samples("katcp_sensor_string_info")] == [
        "x" * 64,
        "10.0.0.1:7147",
    ]


async def test_web_metrics_options_and_gzip(gadget: Gadget) -> None:
    """katcpx-web's /metrics takes the exporter's filters and string limit; gzip on request."""
    device = gadget
    hub = DeviceHub([DeviceSpec("gadget", "127.0.0.1", device.bind_address[1])])
    options = {"sensor_filter": "^(temp|label)$", "max_string_length": 3}
    server = WebServer(hub, "127.0.0.1", 0, metrics=options)
    await server.start()
    try:
        await hub.until_synced(TIMEOUT)
        url = server.url + "metrics"
        response = await get(url, **{"Accept-Encoding": "gzip"})
        assert response.headers["Content-Encoding"] == "gzip"
        scrape = parse(gzip.decompress(response.body).decode())
        assert scrape.sensors("gadget") == {"temp", "label"}
        assert scrape.samples("katcp_sensor_string_info") == []  # "lab one" > 3 characters
        plain = await get(url)
        assert "Content-Encoding" not in plain.headers
        assert b"katcp_sensor_value" in plain.body
    finally:
        await server.stop()


async def test_exporter_http_head_gzip_and_name_filter(gadget: Gadget) -> None:
    device = gadget
    exporter, url = await start_exporter({"gadget": device.bind_address[1]})
    try:
        head = await get(url, method="HEAD")
        assert head.code == 200 and head.body == b""
        assert head.headers["Content-Type"].startswith("text/plain")
        zipped = await get(url, **{"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert b"katcp_device_up" in gzip.decompress(zipped.body)
        only = await get(url + "?name[]=katcp_device_up&name[]=katcpx_resource_connected")
        scrape = parse(only.body.decode())
        assert set(scrape.families) == {"katcp_device_up", "katcpx_resource_connected"}
    finally:
        assert await exporter.stop() == 0
    log = await output(exporter)
    # Scrapes are not logged at INFO (tornado.access would log each).
    assert "GET /metrics" not in log and "tornado.access" not in log, log


async def test_silent_device_is_connected_and_syncing() -> None:
    """TCP up but the device says nothing: connected and ``syncing``, not disconnected."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    exporter, url = await start_exporter({"mute": port})
    try:

        async def syncing() -> object:
            s = await fetch(url)
            state = s.value(
                "katcpx_resource_state", resource="mute", katcpx_resource_state="syncing"
            )
            return s if state == 1 else None

        # Well within the 5 s a device has to announce its protocol.
        scrape = await eventually(syncing, timeout=3.0, what="state syncing")
        assert scrape.value("katcpx_resource_connected", resource="mute") == 1
        assert scrape.value("katcp_device_up", device="mute") == 0
    finally:
        assert await exporter.stop() == 0
        for writer in accepted:
            writer.close()
        server.close()


async def test_web_scrapes_not_logged_at_info(gadget: Gadget) -> None:
    """katcpx-web at its default INFO level: no tornado.access line per scrape."""
    device = gadget
    web = await Proc.start(
        "katcpx-web", sys.executable, "-m", "katcpx.web",
        f"gadget=127.0.0.1:{device.bind_address[1]}", "--port", "0",
    )  # fmt: skip
    try:
        base = (await web.wait_line(r"on (http://\S+)")).group(1)
        assert (await get(base + "metrics")).code == 200
    finally:
        assert await web.stop() == 0
    log = await output(web)
    assert "tornado.access" not in log and "GET /metrics" not in log, log
