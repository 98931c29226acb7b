"""Sensor history: from the gateway's streams (--redis) and from the hub's ring buffer."""

from __future__ import annotations

import time

from web.conftest import http, start_device, start_web, stop_device

from katcpx.gateway import Gateway
from katcpx.web import WebServer
from katcpx.web._hub import DeviceSpec
from katcpx.web._redis_source import RedisSource

from .conftest import TIMEOUT, WS, wait_until


async def known_readings(device, t0: float, arrived) -> list[tuple[float, float]]:
    """Ten temperatures with known timestamps, 0.1 s apart from `t0` (after any other).

    Each is awaited (``arrived(value)``) before the next is set: a device may send only the
    latest of several changes made in one loop turn.
    """
    readings = [(t0 + 0.1 * i, 30.0 + i) for i in range(10)]
    for timestamp, value in readings:
        device.temp.set_value(value, timestamp=timestamp)
        await arrived(value)
    return readings


async def check_ranges(server, readings: list[tuple[float, float]], source: str) -> None:
    base = "/api/devices/thermo/sensors/temp/history"
    t = [r[0] for r in readings]

    async def values(query: str) -> list[float]:
        status, body = await http(server, f"{base}?{query}")
        assert status == 200, body
        assert body["source"] == source and body["sensor"] == "temp"
        stamps = [r["timestamp"] for r in body["readings"]]
        assert stamps == sorted(stamps)
        return [r["value"] for r in body["readings"]]

    assert await values(f"since={t[2]}&until={t[5]}") == [32.0, 33.0, 34.0, 35.0]
    assert await values(f"since={t[2]}&until={t[5]}&limit=2") == [34.0, 35.0]
    assert await values(f"since={t[8]}") == [38.0, 39.0]
    assert (await values(f"until={t[1]}"))[-2:] == [30.0, 31.0]
    assert await values(f"since={t[9] + 1}") == []
    # Bad input: a clear error naming the parameter.
    for query, word in (("since=x", "since"), ("limit=0", "limit"), ("limit=1.5", "limit")):
        status, body = await http(server, f"{base}?{query}")
        assert status == 400 and word in body["error"], body
    status, body = await http(server, f"{base}?since={t[5]}&until={t[2]}")
    assert status == 400 and "after" in body["error"]
    status, body = await http(server, "/api/devices/thermo/sensors/nope/history")
    assert status == 404 and body["code"] == "unknown_sensor"


async def test_history_from_redis_streams(redis_server):
    device = await start_device()
    host, port = device.bind_address
    gateway = Gateway([DeviceSpec("thermo", host, port)], redis_server.url)
    await gateway.start()
    source = RedisSource(redis_server.url, check_interval=0.1)
    server = WebServer(source, "127.0.0.1", 0)
    await server.start()
    try:
        await gateway.hub.until_synced(TIMEOUT)
        await wait_until(
            lambda: "thermo" in source.device_names and source.device_message("thermo")["synced"],
            what="synced",
        )

        async def arrived(value: float) -> None:
            await wait_until(
                lambda: (source.value_text("thermo", "temp") or "").find(f":{value},") > 0,
                what=f"{value} through Redis",
            )

        readings = await known_readings(device, time.time() + 1.0, arrived)
        await check_ranges(server, readings, "redis")
    finally:
        await server.stop()
        await gateway.stop()
        await stop_device(device)


async def test_history_from_ring_buffer_without_redis():
    device = await start_device()
    host, port = device.bind_address
    server = await start_web([DeviceSpec("thermo", host, port)])
    ws = await WS.connect(server)
    try:
        answer = await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
        assert answer["subscribed"] == ["temp"]

        async def arrived(value: float) -> None:
            await ws.expect(lambda m: m["type"] == "update" and m["value"] == value)

        readings = await known_readings(device, time.time() + 1.0, arrived)
        await check_ranges(server, readings, "memory")
    finally:
        ws.close()
        await server.stop()
        await stop_device(device)
