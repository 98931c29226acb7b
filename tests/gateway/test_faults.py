"""Faults: Redis killed and restarted, a device restarted (the gateway in-process)."""

from __future__ import annotations

import json

import redis
from web.conftest import start_device, stop_device

from katcpx.gateway import Gateway
from katcpx.web._hub import DeviceSpec
from katcpx.web._redis_source import RedisSource

from .conftest import TIMEOUT, Collector, wait_until


async def test_redis_killed_and_restarted_gateway_resumes_and_counts_drops(redis_server):
    device = await start_device()
    host, port = device.bind_address
    gateway = Gateway([DeviceSpec("thermo", host, port)], redis_server.url, buffer_limit=20)
    await gateway.start()
    try:
        await gateway.hub.until_synced(TIMEOUT)
        await wait_until(lambda: gateway.writer.written >= 4, what="first readings written")
        redis_server.kill()
        # The gateway notices at its next write (the heartbeat at the latest).
        await wait_until(lambda: not gateway.writer.connected, what="outage noticed")
        before = gateway.readings
        for i in range(1, 101):  # each a change: the event strategy sends every one
            device.count.set_value(i)
        await wait_until(lambda: gateway.readings >= before + 100, what="readings during outage")
        assert gateway.writer.buffered == 20
        assert gateway.writer.dropped == 80
        sampling_before = list(device.sampling_requests)
        redis_server.start()
        await wait_until(
            lambda: gateway.writer.connected and gateway.writer.buffered == 0, what="resumed"
        )
        client = redis.Redis(port=redis_server.port)
        try:
            # The 20 newest readings made it; the state was rewritten into the new Redis.
            entries = client.xrange("katcpx:dev:thermo:readings")
            counts = [json.loads(f[b"j"])["value"] for _, f in entries if f[b"s"] == b"count"]
            assert counts == list(range(81, 101))
            latest = json.loads(client.hget("katcpx:dev:thermo:values", "count"))
            assert latest["value"] == 100
            assert client.hget("katcpx:dev:thermo:sensors", "temp") is not None
            await wait_until(lambda: client.exists("katcpx:gateway"), what="heartbeat")
            status = json.loads(client.get("katcpx:gateway"))
            assert status["dropped"] == 80 and status["outages"] >= 1
            # The device subscription was kept all along: no new sampling requests.
            assert device.sampling_requests == sampling_before
            # And new readings flow again.
            device.count.set_value(1234)
            await wait_until(
                lambda: (
                    json.loads(client.hget("katcpx:dev:thermo:values", "count"))["value"] == 1234
                ),
                what="live again",
            )
        finally:
            client.close()
    finally:
        await gateway.stop()
        await stop_device(device)


async def test_device_restarted_sensors_unreachable_then_live(redis_server):
    device = await start_device()
    host, port = device.bind_address
    gateway = Gateway([DeviceSpec("thermo", host, port)], redis_server.url)
    await gateway.start()
    source = RedisSource(redis_server.url, check_interval=0.1)
    await source.start()
    sink = Collector()
    try:
        await gateway.hub.until_synced(TIMEOUT)
        await wait_until(lambda: "thermo" in source.device_names and source.gateway == "up")
        # The gateway's "synced" may reach Redis a loop turn after its hub says so.
        await wait_until(lambda: source.device_message("thermo")["synced"], what="web synced")
        source.attach(sink)
        assert source.subscribe(sink, "thermo", "temp") == "subscribed"
        await stop_device(device)
        await wait_until(
            lambda: any(m["status"] == "unreachable" for m in sink.updates("temp")),
            what="temp unreachable",
        )
        gone = [m for m in sink.updates("temp") if m["status"] == "unreachable"][-1]
        assert gone["value"] == 20.5 and gone["connected"] is False
        assert source.device_message("thermo")["state"] == "disconnected"
        assert source.sensor("thermo", "temp").reading.status == "unreachable"
        device = await start_device(port)
        device.temp.set_value(22.0)
        await wait_until(
            lambda: (
                sink.updates("temp")[-1]["status"] == "nominal"
                and sink.updates("temp")[-1]["value"] == 22.0
            ),
            what="temp live again",
        )
        await wait_until(lambda: source.device_message("thermo")["synced"], what="synced")
    finally:
        await source.stop()
        await gateway.stop()
        if device.running():
            await stop_device(device)


async def test_a_device_is_written_synced_only_after_its_sensors(redis_server):
    # What a web instance may read at any moment: once the device's state says "synced",
    # its sensors are in Redis (they were written after it: a subscription made in
    # between failed with "no sensor").
    client = redis.Redis(port=redis_server.port)
    order: list[str] = []
    with client.monitor() as monitor:
        device = await start_device()
        host, port = device.bind_address
        gateway = Gateway([DeviceSpec("thermo", host, port)], redis_server.url)
        await gateway.start()
        try:
            await gateway.hub.until_synced(TIMEOUT)
            await wait_until(lambda: gateway.writer.written >= 1, what="written")
            await gateway.stop()
            gateway = None
            for event in monitor.listen():
                command = event["command"]
                if command.startswith("HSET katcpx:dev:thermo:sensors"):
                    order.append("sensors")
                elif command.startswith("HSET katcpx:devices thermo") and '"state": "synced"' in (
                    command
                ):
                    order.append("synced")
                    break
        finally:
            if gateway is not None:
                await gateway.stop()
            await stop_device(device)
    client.close()
    assert order[:2] == ["sensors", "synced"], order
