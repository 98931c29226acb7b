"""What a first user of gateway + ``katcpx-web --redis`` ran into (real redis-server)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest
import redis
from web.conftest import start_device, stop_device

from katcpx.gateway import Gateway
from katcpx.web._hub import DeviceSpec
from katcpx.web._redis_source import RedisSource

from .conftest import TIMEOUT, Collector, env, start_gateway, wait_until
from .redis_server import RedisServer, free_port


@pytest.fixture
async def carried(redis_server):
    """A thermostat device, and a gateway carrying it into `redis_server`."""
    device = await start_device()
    host, port = device.bind_address
    gateway = Gateway([DeviceSpec("thermo", host, port)], redis_server.url)
    await gateway.start()
    yield device, gateway
    await gateway.stop()
    await stop_device(device)


def _messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "katcpx.gateway"]


async def test_unreachable_redis_is_logged_with_its_reason_until_it_connects(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    device = await start_device()
    host, port = device.bind_address
    server = RedisServer(tmp_path, free_port())  # not started yet: connection refused
    gateway = Gateway([DeviceSpec("thermo", host, port)], server.url)
    gateway.writer.report_interval = 0.3
    await gateway.start()
    try:
        await gateway.hub.until_synced(TIMEOUT)
        await wait_until(
            lambda: sum("is unreachable" in m for m in _messages(caplog)) >= 2,
            what="repeated unreachable logs",
        )
        text = "\n".join(_messages(caplog))
        assert "refused" in text.lower(), text
        assert "readings flow into Redis" not in text
        server.start()
        await wait_until(
            lambda: any("device thermo: readings flow into Redis" in m for m in _messages(caplog)),
            what="ready line",
        )
        assert any("reachable again" in m for m in _messages(caplog))
    finally:
        await gateway.stop()
        server.kill()
        await stop_device(device)


async def test_wrong_password_is_logged_as_such(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    device = await start_device()
    host, port = device.bind_address
    redis_server = RedisServer(tmp_path, None, "--requirepass", "right-secret")
    redis_server.start()
    url = f"redis://:wrong-secret@127.0.0.1:{redis_server.port}/0"
    gateway = Gateway([DeviceSpec("thermo", host, port)], url)
    await gateway.start()
    try:
        await wait_until(
            lambda: any("is unreachable" in m for m in _messages(caplog)), what="auth error"
        )
        text = "\n".join(_messages(caplog))
        assert "authentication failed" in text and "wrong-secret" not in text, text
        assert "readings flow into Redis" not in text
    finally:
        await gateway.stop()
        redis_server.kill()
        await stop_device(device)


async def _control(client, request: dict, timeout: float = TIMEOUT):
    client.lpush("katcpx:control", json.dumps(request))
    popped = await asyncio.to_thread(client.brpop, [request["reply"]], int(timeout))
    assert popped is not None, "no reply"
    return json.loads(popped[1])


async def test_bad_control_request_with_reply_key_gets_an_error_reply(redis_server, carried):
    device, gateway = carried
    client = redis.Redis(port=redis_server.port)
    try:
        for bad in (
            {"action": "explode", "device": "thermo", "reply": "katcpx:reply:a"},
            {"action": "call", "device": 3, "request": "x", "reply": "katcpx:reply:b"},
            {"action": "call", "device": "thermo", "request": "x", "args": 1, "reply": "k:c"},
        ):
            answer = await _control(client, bad)
            assert answer["ok"] is False and answer["code"] == "bad_request", answer
            assert answer["http_status"] == 400 and answer["error"]
    finally:
        client.close()


async def test_control_reply_reaches_caller_after_redis_restart_and_web_does_not_flap(
    redis_server, carried
):
    device, gateway = carried
    source = RedisSource(redis_server.url, check_interval=0.1)
    await source.start()
    sink = Collector()
    try:
        await gateway.hub.until_synced(TIMEOUT)
        await wait_until(lambda: source.gateway == "up" and source.device_names)
        await wait_until(lambda: source.device_message("thermo")["synced"], what="synced")
        # Several at once: both clients' pools hold several connections, which go stale.
        results = await asyncio.gather(
            *(source.call("thermo", "set-temp", [20 + i]) for i in range(4))
        )
        assert all(r["ok"] for r in results)
        redis_server.kill()
        await wait_until(lambda: source.gateway == "redis unreachable", what="outage seen")
        redis_server.start()
        await wait_until(
            lambda: gateway.writer.connected and source.gateway == "up", what="back up"
        )
        source.attach(sink)
        for i in range(4):
            result = await source.call("thermo", "set-temp", [30 + i])
            assert result["ok"] and result["reply"] == [str(30.0 + i)], result
        await asyncio.gather(*(source.call("thermo", "set-temp", [40 + i]) for i in range(4)))
        for _ in range(4):
            await source.history.query("thermo", "temp", float("-inf"), float("inf"), 10)
        await asyncio.sleep(1.0)  # a few of the web's checks
        errors = [m for m in sink.messages if m["type"] == "error"]
        assert not errors, errors
    finally:
        await source.stop()


async def test_second_gateway_refused_and_stop_keeps_the_others_heartbeat(redis_server):
    device = await start_device()
    host, port = device.bind_address
    first = Gateway([DeviceSpec("thermo", host, port)], redis_server.url)
    await first.start()
    client = redis.Redis(port=redis_server.port)
    try:
        await wait_until(lambda: client.exists("katcpx:gateway"), what="first heartbeat")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "katcpx.gateway", f"thermo={host}:{port}", "--redis", redis_server.url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env(),
        )
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 2, (out, err)
        assert b"another katcpx-gateway" in err and b"--takeover" in err, err
        # With --takeover it starts; its clean stop leaves the first one's heartbeat alone
        # once the first one has beaten again.
        second = await start_gateway(
            redis_server.url, f"thermo={host}:{port}", extra=("--takeover",)
        )
        await wait_until(
            lambda: json.loads(client.get("katcpx:gateway") or "{}").get("id") not in (None,),
            what="heartbeat",
        )
        assert await second.stop() == 0
        await wait_until(
            lambda: json.loads(client.get("katcpx:gateway") or "{}").get("id") == first.id,
            what="first's heartbeat back",
        )
        # A heartbeat of another id survives this gateway's stop.
        client.set("katcpx:gateway", json.dumps({"id": "someone-else"}))
        await first.stop()
        assert json.loads(client.get("katcpx:gateway"))["id"] == "someone-else"
    finally:
        await first.stop()
        client.close()
        await stop_device(device)


async def test_device_dropped_from_config_is_removed_from_redis_and_web(redis_server):
    device = await start_device()
    other = await start_device()
    host, port = device.bind_address
    ohost, oport = other.bind_address
    specs = [DeviceSpec("thermo", host, port), DeviceSpec("psu", ohost, oport)]
    gateway = Gateway(specs, redis_server.url)
    await gateway.start()
    source = RedisSource(redis_server.url, check_interval=0.1)
    await source.start()
    client = redis.Redis(port=redis_server.port)
    try:
        await wait_until(lambda: set(source.device_names) == {"thermo", "psu"}, what="both")
        await gateway.stop()
        gateway = Gateway(specs[:1], redis_server.url)
        await gateway.start()
        await wait_until(lambda: source.device_names == ["thermo"], what="psu gone on the web")
        assert client.hkeys("katcpx:devices") == [b"thermo"]
        assert not client.exists("katcpx:dev:psu:values", "katcpx:dev:psu:sensors")
    finally:
        client.close()
        await source.stop()
        await gateway.stop()
        await stop_device(device)
        await stop_device(other)


async def test_web_started_while_redis_is_down_answers_503_redis_unavailable(tmp_path, programs):
    from .conftest import WS, start_web_redis
    from .test_web_features import fetch

    server = RedisServer(tmp_path, free_port())  # never started: connection refused
    web, info = await start_web_redis(server.url)
    programs.append(web)
    for path in ("/api/devices", "/api/devices/psu", "/api/devices/psu/sensors/voltage"):
        resp = await fetch(info.port, path)
        assert resp.code == 503, (path, resp.code, resp.body)
        body = json.loads(resp.body)
        assert body["code"] == "redis_unavailable" and "Redis" in body["error"], body
    ws = await WS.connect(info)
    try:
        msg = await ws.expect(lambda m: m["type"] == "error")
        assert msg["code"] == "redis_unavailable", msg
    finally:
        ws.close()


async def test_redis_dropping_leaves_no_unclosed_pipeline(redis_server, carried, caplog):
    import gc

    device, gateway = carried
    await gateway.hub.until_synced(TIMEOUT)
    await wait_until(lambda: gateway.writer.written >= 1, what="first readings written")
    caplog.set_level(logging.WARNING, logger="asyncio")

    async def feed() -> None:
        i = 0
        while True:
            i += 1
            device.count.set_value(i)
            await asyncio.sleep(0.001)

    feeding = asyncio.ensure_future(feed())
    await wait_until(lambda: gateway.writer.written >= 20, what="readings flowing")
    redis_server.kill()
    await wait_until(lambda: not gateway.writer.connected, what="outage noticed")
    feeding.cancel()
    gc.collect()
    await asyncio.sleep(0.1)
    gc.collect()
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]


async def test_redis_mode_refresh_history_codes_and_start_line(redis_server, carried, programs):
    from .conftest import WS, start_web_redis, until_synced
    from .test_web_features import fetch

    device, gateway = carried
    client = redis.Redis(port=redis_server.port)
    try:
        web, info = await start_web_redis(redis_server.url)
        programs.append(web)
        assert "no devices" not in web.first_line and "from Redis" in web.first_line
        ws = await WS.connect(info)
        try:
            await until_synced(ws, "thermo")
            ans = await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
            assert ans["type"] == "subscribe", ans
            await ws.expect(lambda m: m["type"] == "update" and m["sensor"] == "temp")
            await wait_until(
                lambda: client.xlen("katcpx:dev:thermo:readings") > 0, what="stream written"
            )
            before = client.xlen("katcpx:dev:thermo:readings")
            ws.seen.clear()
            for _ in range(3):
                ans = await ws.request({"action": "refresh"})
                assert ans["type"] == "refresh" and ans["refreshed"], ans
            # As without --redis: each refresh's update comes before its summary.
            kinds = [m["type"] for m in ws.seen if m["type"] in ("update", "refresh")]
            assert kinds == ["update", "refresh"] * 3, kinds
            # An unchanged reading read again is not a new stream entry.
            temps = [
                json.loads(f[b"j"])
                for _, f in client.xrange("katcpx:dev:thermo:readings")
                if f[b"s"] == b"temp"
            ]
            assert len({t["timestamp"] for t in temps}) == len(temps), temps
            assert client.xlen("katcpx:dev:thermo:readings") == before
        finally:
            ws.close()
        for query in ("since=abc", "limit=0", "since=5&until=1", "limit=1.5"):
            resp = await fetch(info.port, f"/api/devices/thermo/sensors/temp/history?{query}")
            body = json.loads(resp.body)
            assert resp.code == 400 and body["code"] == "bad_parameter", (query, body)
    finally:
        client.close()
