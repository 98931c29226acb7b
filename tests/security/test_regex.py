"""Client-sent regular expressions run on RE2: linear time, clear errors."""

from __future__ import annotations

import threading
import time

import pytest
from server.helpers import connect, running

from katcpx._client_regex import ClientRegexError, compile_client_regex
from katcpx.sensor import Sensor
from katcpx.server import DeviceServer

CATASTROPHIC = "/(.*)*(.*)*!/"


class ManySensors(DeviceServer):
    VERSION_INFO = ("many", 1, 0)
    BUILD_INFO = ("many", 1, 0, "")

    def setup_sensors(self) -> None:
        for i in range(50):
            name = f"a.{i}." + "x" * 200
            self.add_sensor(Sensor(Sensor.INTEGER, name, "A sensor.", "", [0, 10]))


@pytest.mark.parametrize("request_name", ["sensor-list", "sensor-value"])
def test_catastrophic_pattern_does_not_stall_others(request_name) -> None:
    srv = ManySensors("127.0.0.1", 0)
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    with running(srv), connect(srv) as attacker, connect(srv) as other:
        started = time.monotonic()
        done = threading.Event()

        def watchdogs() -> None:
            for _ in range(5):
                assert other.request("watchdog")[0].arguments == [b"ok"]
            done.set()

        t = threading.Thread(target=watchdogs)
        t.start()
        reply, informs = attacker.request(request_name, CATASTROPHIC)
        t.join(5)
        assert done.is_set()
        assert reply.arguments[0] == b"ok" and informs == []
        # Python's re takes seconds on this; RE2 is linear.
        assert time.monotonic() - started < 1.0


def test_backtracking_features_are_refused_with_a_reason() -> None:
    srv = ManySensors("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        reply, _ = c.request("sensor-list", r"/(a)\1/")
        assert reply.arguments[0] == b"fail"
        assert b"Invalid regular expression" in reply.arguments[1]
        assert b"escape" in reply.arguments[1]
        # The connection goes on.
        assert c.request("sensor-list", "/a\\.1\\./")[0].arguments == [b"ok", b"1"]


def test_compile_client_regex() -> None:
    assert compile_client_regex("a.b").search("xa-b") is not None
    with pytest.raises(ClientRegexError, match="missing \\)"):
        compile_client_regex("(")
    with pytest.raises(ClientRegexError):
        compile_client_regex("(?=x)")
