"""Client regexes whose compiled program explodes (nested counted repetition) are refused."""

from __future__ import annotations

import threading
import time

import pytest
from server.helpers import connect, running

from katcpx._client_regex import MAX_PROGRAM_SIZE
from katcpx.sensor import Sensor
from katcpx.server import DeviceServer

from .test_web import start_site, stop_site

EXPLODING = ["/((.*){31}){31}/", "/(.*){1000}/"]


class BigDevice(DeviceServer):
    VERSION_INFO = ("big", 1, 0)
    BUILD_INFO = ("big", 1, 0, "")

    def setup_sensors(self) -> None:
        for i in range(4102):
            name = f"dig.sensor-{i:04d}.some-long-name.value"
            self.add_sensor(Sensor(Sensor.INTEGER, name, "A sensor.", "", [0, 10]))


@pytest.mark.parametrize("pattern", EXPLODING)
@pytest.mark.parametrize("request_name", ["sensor-list", "sensor-value"])
def test_exploding_patterns_are_refused_and_others_stay_fast(request_name, pattern) -> None:
    srv = BigDevice("127.0.0.1", 0)
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    with running(srv), connect(srv) as attacker, connect(srv) as other:
        slowest = [0.0]
        done = threading.Event()

        def watchdogs() -> None:
            for _ in range(20):
                t = time.monotonic()
                assert other.request("watchdog")[0].arguments == [b"ok"]
                slowest[0] = max(slowest[0], time.monotonic() - t)
            done.set()

        t = threading.Thread(target=watchdogs)
        t.start()
        for _ in range(3):
            reply, informs = attacker.request(request_name, pattern)
            assert reply.arguments[0] == b"fail" and informs == []
            assert f"limit is {MAX_PROGRAM_SIZE}".encode() in reply.arguments[1], reply
        t.join(10)
        assert done.is_set() and slowest[0] < 0.5, slowest
        # A sane pattern still works on all 4102 names quickly.
        started = time.monotonic()
        reply, _ = attacker.request("sensor-list", "/sensor-00(1|2)/")
        assert reply.arguments == [b"ok", b"20"]
        assert time.monotonic() - started < 1.0


async def test_web_filter_is_bounded_with_a_clear_code() -> None:
    site = await start_site(None, None)
    try:
        for path in ("/api/devices/dev/sensors?filter=", "/api/sensors?filter="):
            started = time.monotonic()
            status, answer = await site.http(path + "%28%28.%2A%29%7B31%7D%29%7B31%7D")
            assert status == 400 and answer["code"] == "bad_filter", answer
            assert f"limit is {MAX_PROGRAM_SIZE}" in answer["error"]
            # Clear text: the pattern as sent, no doubled escaping.
            assert "((.*){31}){31}" in answer["error"] and "\\\\" not in answer["error"]
            status, _ = await site.http("/api/devices")
            assert status == 200
            assert time.monotonic() - started < 1.0
        status, answer = await site.http("/api/sensors?filter=%28a%29%5C1")
        assert status == 400 and answer["code"] == "bad_filter" and "\\1" in answer["error"]
    finally:
        await stop_site(site)
