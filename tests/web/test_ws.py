"""Websocket protocol: subscriptions, updates, requests, refresh, device state, bad input."""

from __future__ import annotations

import asyncio
import socket

from katcpx.sensor import Sensor
from katcpx.web import DeviceSpec

from .conftest import TIMEOUT, WS, start_device, start_web, stop_device


def is_update(sensor: str, value: object = None):
    def pred(m):
        return (
            m["type"] == "update"
            and m["sensor"] == sensor
            and (value is None or m["value"] == value)
        )

    return pred


async def test_hello_lists_devices(ws, device):
    (dev,) = ws.hello["devices"]
    assert dev["device"] == "thermo"
    assert dev["state"] == "synced" and dev["connected"] is True
    assert dev["address"] == "{}:{}".format(*device.bind_address)
    assert "subscribeSafely" in ws.hello["actions"]
    assert ws.hello["strategy"] == ["event"]


async def test_subscribe_sends_summary_meta_and_value(ws, device):
    ans = await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
    assert ans["type"] == "subscribe"
    assert ans["subscribed"] == ["temp"] and ans["failed"] == []
    meta = await ws.expect(lambda m: m["type"] == "meta")
    assert meta["device"] == "thermo" and meta["sensor"] == "temp"
    assert meta["sensor_type"] == "float" and meta["units"] == "degC"
    assert meta["description"] == "Temperature" and meta["numeric"] is True
    first = await ws.expect(is_update("temp"))
    assert first["value"] == 20.5 and first["status"] == "nominal"
    assert first["connected"] is True and first["timestamp"] > 0
    device.temp.set_value(30.25, Sensor.WARN)
    upd = await ws.expect(is_update("temp", 30.25))
    assert upd["status"] == "warn" and upd["device"] == "thermo"
    assert device.sampling_requests == [("temp", "event")]


async def test_discrete_meta_has_params(ws):
    await ws.request({"action": "subscribe", "device": "thermo", "sensor": "mode"})
    meta = await ws.expect(lambda m: m["type"] == "meta")
    assert meta["params"] == ["idle", "heat", "cool"] and meta["numeric"] is False
    assert (await ws.expect(is_update("mode")))["value"] == "idle"


async def test_subscribe_several_and_unsubscribe(ws, device):
    ans = await ws.request(
        {"action": "subscribe", "device": "thermo", "sensors": ["temp", "count", "nope"]}
    )
    assert ans["subscribed"] == ["temp", "count"]
    assert [f["sensor"] for f in ans["failed"]] == ["nope"]
    assert ans["failed"][0]["code"] == "unknown_sensor"
    await ws.expect(is_update("count", 0))
    again = await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
    assert again["already_subscribed"] == ["temp"]
    ans = await ws.request(
        {"action": "unsubscribe", "device": "thermo", "sensors": ["count", "label"]}
    )
    assert ans["unsubscribed"] == ["count"] and ans["not_subscribed"] == ["label"]
    # The last subscriber gone, the device is told to stop sampling.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while ("count", "none") not in device.sampling_requests:
        assert loop.time() < deadline, device.sampling_requests
        await ws.request({"action": "refresh", "device": "thermo", "sensor": "temp"})
    device.count.set_value(7)
    device.temp.set_value(1.0)
    # Updates are in order per socket: temp's arrives and count's never does.
    upd = await ws.expect(lambda m: m["type"] == "update" and m["value"] in (7, 1.0))
    assert upd["sensor"] == "temp"


async def test_set_issues_request(ws, device):
    ans = await ws.request(
        {"action": "set", "device": "thermo", "request": "set-temp", "args": [12.5]}
    )
    assert ans["type"] == "set" and ans["ok"] is True and ans["status"] == "ok"
    assert ans["reply"] == ["12.5"] and ans["request"] == "set-temp"
    assert device.temp.value() == 12.5
    # "value" is one argument, as in ophyd-websocket.
    ans = await ws.request({"action": "set", "device": "thermo", "request": "set-temp", "value": 3})
    assert ans["ok"] and device.temp.value() == 3.0


async def test_set_reports_fail_informs_and_timeout(ws):
    ans = await ws.request(
        {"action": "set", "device": "thermo", "request": "set-temp", "args": [-100]}
    )
    assert ans["ok"] is False and ans["status"] == "fail" and ans["error"] == "too cold"
    ans = await ws.request(
        {"action": "set", "device": "thermo", "request": "greet", "args": ["ann", 2]}
    )
    assert ans["ok"] and ans["informs"] == [["hello ann"], ["hello ann"]]
    ans = await ws.request(
        {"action": "set", "device": "thermo", "request": "set-temp", "args": ["warm"]}
    )
    assert ans["status"] == "fail" and "warm" in ans["error"]
    ans = await ws.request(
        {"action": "set", "device": "thermo", "request": "stall", "timeout": 0.2}
    )
    assert ans["ok"] is False and ans["status"] == "timeout", ans


async def test_refresh_reads_subscribed_sensors(ws, device):
    await ws.request({"action": "subscribe", "device": "thermo", "sensors": ["temp", "label"]})
    await ws.expect(is_update("label"))
    ans = await ws.request({"action": "refresh"})
    assert ans["type"] == "refresh" and ans["failed"] == []
    assert sorted(t["sensor"] for t in ans["refreshed"]) == ["label", "temp"]
    # The fresh readings were pushed as updates before the summary.
    refreshed = [m for m in ws.seen if m["type"] == "update" and m["sensor"] == "label"]
    assert len(refreshed) >= 2


async def test_bad_input_gets_errors_and_socket_survives(ws, web):
    cases = [
        ("{not json", "invalid_json"),
        ("[1, 2]", "bad_message"),
        ({"action": "explode"}, "unknown_action"),
        ({"device": "thermo"}, "unknown_action"),
        ({"action": "subscribe", "device": "nowhere", "sensor": "temp"}, "unknown_device"),
        ({"action": "subscribe", "device": "thermo", "sensor": "nope"}, "unknown_sensor"),
        ({"action": "subscribe", "device": "thermo"}, "bad_message"),
        ({"action": "subscribe", "device": "thermo", "sensors": "temp"}, "bad_message"),
        ({"action": "subscribe", "sensor": "temp"}, "bad_message"),
        ({"action": "unsubscribe", "device": 3, "sensor": "temp"}, "bad_message"),
        ({"action": "set", "device": "thermo", "request": "nope"}, "unknown_request"),
        ({"action": "set", "device": "thermo"}, "bad_message"),
        ({"action": "set", "device": "thermo", "request": "help", "timeout": -1}, "bad_message"),
        ({"action": "set", "device": "thermo", "request": "help", "args": [{}]}, "error"),
        ({"action": "refresh", "device": "nowhere"}, "unknown_device"),
    ]
    for payload, code in cases:
        ws.send(payload)
        err = await ws.expect(lambda m: m["type"] == "error")
        assert err["code"] == code, (payload, err)
        assert err["error"]
    # Still serving, on this socket and for newcomers.
    ans = await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
    assert ans["subscribed"] == ["temp"]
    other = await WS.connect(web)
    assert other.hello["devices"][0]["state"] == "synced"
    other.close()


async def test_error_echoes_id(ws):
    err = await ws.request({"action": "subscribe", "device": "x", "sensor": "y", "id": "abc"})
    assert err == {
        "type": "error",
        "code": "unknown_device",
        "error": "unknown device 'x'",
        "action": "subscribe",
        "id": "abc",
        "device": "x",
        "sensor": "y",
    }


async def test_shared_subscription_makes_one_katcp_subscription(web, device):
    clients = await asyncio.gather(*(WS.connect(web) for _ in range(50)))
    answers = await asyncio.gather(
        *(c.request({"action": "subscribe", "device": "thermo", "sensor": "temp"}) for c in clients)
    )
    assert all(a["subscribed"] == ["temp"] for a in answers)
    await asyncio.gather(*(c.expect(is_update("temp", 20.5)) for c in clients))
    assert web.hub.subscriber_count("thermo", "temp") == 50
    device.temp.set_value(-3.5)
    await asyncio.gather(*(c.expect(is_update("temp", -3.5)) for c in clients))
    assert device.sampling_counts["temp"] == 1, device.sampling_requests
    # 49 leave: still sampled. The last one leaving ends the sampling, once.
    for c in clients[:-1]:
        c.close()
    last = clients[-1]
    await last.request({"action": "unsubscribe", "device": "thermo", "sensor": "temp"})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while device.sampling_counts["temp"] < 2:
        assert loop.time() < deadline
        await last.request({"action": "refresh"})
    assert device.sampling_requests == [("temp", "event"), ("temp", "none")]
    assert web.hub.subscriber_count("thermo", "temp") == 0
    last.close()


async def test_rate_limit_uses_event_rate(device):
    host, port = device.bind_address
    server = await start_web([DeviceSpec("thermo", host, port)], ("event-rate", "0.2", "60"))
    try:
        ws = await WS.connect(server)
        assert ws.hello["strategy"] == ["event-rate", "0.2", "60"]
        await ws.request({"action": "subscribe", "device": "thermo", "sensor": "count"})
        await ws.expect(is_update("count", 0))
        ((name, strategy, shortest, longest),) = device.sampling_requests
        assert (name, strategy, float(shortest), float(longest)) == ("count", "event-rate", 0.2, 60)
        for i in range(1, 30):
            device.count.set_value(i)
        # Held back by the rate limit, the newest value still arrives.
        await ws.expect(is_update("count", 29))
        counts = [m["value"] for m in ws.seen if m["type"] == "update"]
        assert len(counts) < 5, counts
        ws.close()
    finally:
        await server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_device_drop_and_return_are_pushed():
    port = free_port()
    dev = await start_device(port)
    server = await start_web([DeviceSpec("thermo", "127.0.0.1", port)])
    try:
        ws = await WS.connect(server)
        await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
        await ws.expect(is_update("temp", 20.5))
        await stop_device(dev)
        down = await ws.expect(lambda m: m["type"] == "device")
        assert down["device"] == "thermo" and down["state"] == "disconnected"
        assert down["connected"] is False
        # A safe subscription is refused while the device is away; a plain one waits.
        err = await ws.request({"action": "subscribeSafely", "device": "thermo", "sensor": "count"})
        assert err["type"] == "error" and err["code"] == "device_unavailable"
        ans = await ws.request({"action": "subscribe", "device": "thermo", "sensor": "count"})
        assert ans["pending"] == ["count"]
        dev = await start_device(port)
        dev.temp.set_value(99.0)
        dev.count.set_value(5)
        # Both subscriptions resume (the old one re-applied, the pending one started,
        # during the sync), the pending one's meta first; then the device is synced.
        wanted = {("update", "temp"), ("meta", "count"), ("update", "count"), ("device", None)}
        got = []
        while wanted:
            m = await ws.recv()
            if m["type"] == "device" and m["state"] != "synced":
                continue
            key = (m["type"], m.get("sensor"))
            got.append(key)
            wanted.discard(key)
        assert got.index(("meta", "count")) < got.index(("update", "count"))
        latest = {m["sensor"]: m["value"] for m in ws.seen if m["type"] == "update"}
        assert latest == {"temp": 99.0, "count": 5}
        ws.close()
    finally:
        await server.stop()
        if dev.running():
            await stop_device(dev)


async def test_subscribe_safely_on_synced_device(ws):
    ans = await ws.request({"action": "subscribeSafely", "device": "thermo", "sensors": ["temp"]})
    assert ans["type"] == "subscribeSafely" and ans["subscribed"] == ["temp"]
    await ws.expect(is_update("temp"))


async def test_closing_socket_drops_its_subscriptions(web, device):
    a = await WS.connect(web)
    await a.request({"action": "subscribe", "device": "thermo", "sensor": "label"})
    await a.expect(is_update("label"))
    a.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    b = await WS.connect(web)
    while ("label", "none") not in device.sampling_requests:
        assert loop.time() < deadline
        await b.request({"action": "refresh"})
    assert web.hub.subscriber_count("thermo", "label") == 0
    b.close()
