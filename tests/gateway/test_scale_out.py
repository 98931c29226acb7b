"""katcpx-sim site -> katcpx-gateway -> Redis -> katcpx-web --redis instances -> websockets."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from web.conftest import http, start_device, stop_device

from katcpx.client import AsyncClient

from .conftest import (
    ROOT,
    TIMEOUT,
    WS,
    Program,
    start_gateway,
    start_site,
    start_web_redis,
    until_synced,
)

pytestmark = pytest.mark.slow


def is_update(device: str, sensor: str, value: object = None):
    def pred(m: dict) -> bool:
        return (
            m["type"] == "update"
            and m["device"] == device
            and m["sensor"] == sensor
            and (value is None or m["value"] == value)
        )

    return pred


async def seen_or_expect(ws: WS, pred) -> dict:
    """A message satisfying `pred`, already received (e.g. before a reply) or still to come."""
    for msg in ws.seen:
        if pred(msg):
            return msg
    return await ws.expect(pred)


async def test_site_through_gateway_to_two_web_instances(redis_server, programs):
    site = await start_site(programs)
    gateway = await start_gateway(
        redis_server.url, f"psu={site['psu']}", f"weather={site['weather']}"
    )
    programs.append(gateway)
    webs = []
    for _ in range(2):
        prog, server = await start_web_redis(redis_server.url)
        programs.append(prog)
        webs.append(server)
    a, b = [await WS.connect(server) for server in webs]
    try:
        for ws in (a, b):
            await until_synced(ws, "psu")
            answer = await ws.request(
                {"action": "subscribe", "device": "psu", "sensor": "voltage-setpoint"}
            )
            assert answer["subscribed"] == ["voltage-setpoint"], answer
            await ws.expect(lambda m: m["type"] == "meta" and m["sensor"] == "voltage-setpoint")
        # A set from either instance reaches the device; both instances see the update.
        for ws, volts in ((a, 12.5), (b, 7.25)):
            reply = await ws.request(
                {"action": "set", "device": "psu", "request": "voltage", "args": [volts]}
            )
            assert reply["type"] == "set" and reply["ok"], reply
            assert float(reply["reply"][0]) == volts
            for other in (a, b):
                await seen_or_expect(other, is_update("psu", "voltage-setpoint", volts))
        # REST too, and the device holds the value.
        status, body = await http(webs[1], "/api/devices/psu/requests/voltage", "POST", [3.0])
        assert status == 200 and body["ok"], body
        host, port = site["psu"].split(":")
        async with await AsyncClient.connect(host, int(port)) as client:
            reply, informs = await client.call("sensor-value", "voltage-setpoint", timeout=TIMEOUT)
            assert float(informs[0].arguments[4]) == 3.0
        # The counts docs/scale-out.md shows are the simulated devices' (its docs test
        # matches any number, so this is where a wrong one is caught).
        doc = (ROOT / "docs" / "scale-out.md").read_text()
        for device in ("psu", "weather"):
            await until_synced(a, device)
            status, body = await http(webs[0], f"/api/devices/{device}")
            assert status == 200, body
            shown = re.search(rf'"device":"{device}".*?"sensors":(\d+),"requests":(\d+)', doc)
            assert shown, device
            counts = (body["sensors"], body["requests"])
            assert counts == (int(shown.group(1)), int(shown.group(2))), (device, counts)
    finally:
        a.close()
        b.close()


async def test_device_sees_one_strategy_per_sensor(redis_server, programs):
    device = await start_device()
    host, port = device.bind_address
    try:
        gateway = await start_gateway(redis_server.url, f"thermo={host}:{port}")
        programs.append(gateway)
        webs = []
        for _ in range(2):
            prog, server = await start_web_redis(redis_server.url)
            programs.append(prog)
            webs.append(server)
        clients = [await WS.connect(webs[i % 2]) for i in range(6)]
        try:
            for ws in clients:
                await until_synced(ws, "thermo")
                answer = await ws.request(
                    {"action": "subscribe", "device": "thermo", "sensors": ["temp", "count"]}
                )
                assert answer["subscribed"] == ["temp", "count"], answer
            # Browsers come and go: the device is not asked anything.
            for ws in clients[:3]:
                await ws.request({"action": "unsubscribe", "device": "thermo", "sensor": "temp"})
            device.count.set_value(41)
            for ws in clients:
                await seen_or_expect(ws, is_update("thermo", "count", 41))
            async with await AsyncClient.connect(host, port) as client:
                _, informs = await client.call("client-list", timeout=TIMEOUT)
                # The gateway and this client: nobody else holds strategies on the device.
                assert len(informs) == 2, [bytes(m) for m in informs]
                reply, _ = await client.call("sensor-sampling", "temp", timeout=TIMEOUT)
                assert reply.arguments[2:3] == [b"none"]  # this connection's, for contrast
        finally:
            for ws in clients:
                ws.close()
        # Every sensor got exactly one ?sensor-sampling (bulk or single), ever.
        per_sensor: dict[str, int] = {}
        for args in device.sampling_requests:
            if len(args) >= 2:
                for name in args[0].split(","):
                    per_sensor[name] = per_sensor.get(name, 0) + 1
        assert per_sensor == {"temp": 1, "count": 1, "mode": 1, "label": 1}, per_sensor
        assert all(args[1] == "event" for args in device.sampling_requests if len(args) >= 2)
    finally:
        await stop_device(device)


async def test_gateway_killed_is_reported_and_recovered(redis_server, programs):
    device = await start_device()
    host, port = device.bind_address
    try:
        gateway = await start_gateway(redis_server.url, f"thermo={host}:{port}")
        prog, web = await start_web_redis(redis_server.url)
        programs.extend([gateway, prog])
        ws = await WS.connect(web)
        try:
            await until_synced(ws, "thermo")
            gateway.kill()
            error = await ws.expect(lambda m: m["type"] == "error", TIMEOUT)
            assert error["code"] == "gateway_unavailable"
            assert "no katcpx-gateway" in error["error"]
            started = time.monotonic()
            reply = await ws.request(
                {"action": "set", "device": "thermo", "request": "set-temp", "args": [30]}
            )
            assert reply["type"] == "error" and reply["code"] == "gateway_unavailable", reply
            assert time.monotonic() - started < 5.0  # no request timeout, no hang
            status, body = await http(web, "/api/devices/thermo")
            assert body["gateway"] == "down" and body["state"] == "disconnected"
            status, body = await http(web, "/api/devices/thermo/requests/set-temp", "POST", [30])
            assert status == 503 and body["code"] == "gateway_unavailable", body
            # The gateway returns: the instance says so and serves requests again.
            again = await start_gateway(redis_server.url, f"thermo={host}:{port}")
            programs.append(again)
            await ws.expect(
                lambda m: m["type"] == "device" and m["synced"] and m["gateway"] == "up"
            )
            reply = await ws.request(
                {"action": "set", "device": "thermo", "request": "set-temp", "args": [30]}
            )
            assert reply["type"] == "set" and reply["ok"], reply
        finally:
            ws.close()
    finally:
        await stop_device(device)


async def test_no_gateway_at_all_is_a_clear_error(redis_server, programs):
    prog, web = await start_web_redis(redis_server.url)
    programs.append(prog)
    status, body = await http(web, "/api/devices")
    assert status == 200 and body == []
    ws = await WS.connect(web)
    try:
        reply = await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
        assert reply["code"] == "unknown_device"
    finally:
        ws.close()


@pytest.mark.parametrize(
    "extra, error",
    [
        (["a=:1"], b"give the devices to katcpx-gateway"),
        (["--min-interval", "0.5"], b"give --min-interval to katcpx-gateway"),
    ],
)
async def test_web_commands_reject_mixed_usage(redis_server, extra, error):
    prog = Program("katcpx.web", "--redis", redis_server.url, *extra)
    proc = await asyncio.create_subprocess_exec(*prog.argv, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2 and error in err, err
