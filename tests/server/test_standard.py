"""The standard requests and informs of DeviceServer."""

from __future__ import annotations

import inspect
import logging
import queue
import threading

import pytest

from katcpx.flags import ProtocolFlags
from katcpx.kattypes import request_timeout_hint
from katcpx.message import Message
from katcpx.sensor import Sensor
from katcpx.server import DeviceLogger, DeviceServer, KatcpLogHandler

from .helpers import TIMEOUT, Client, ExampleServer, connect, running


@pytest.fixture
def server():
    srv = ExampleServer("127.0.0.1", 0, logger=logging.getLogger("test.standard"))
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    with running(srv):
        yield srv


def test_version_connect_greeting(server):
    with Client(server.bind_address) as c:
        greeting = [bytes(c.read()) for _ in range(3)]
    assert (
        greeting[0]
        == b"#version-connect katcp-protocol " + str(server.PROTOCOL_INFO).encode() + b"\n"
    )
    assert greeting[1].startswith(b"#version-connect katcp-library katcpx-")
    assert greeting[2] == b"#version-connect katcp-device example-1.2 example-1.2rc3\n"


def test_v4_greeting_and_millisecond_timestamps():
    class V4(ExampleServer):
        PROTOCOL_INFO = ProtocolFlags(4, 0, "M")

    srv = V4("127.0.0.1", 0)
    with running(srv), Client(srv.bind_address) as c:
        assert bytes(c.read()) == b"#version example-1.2\n"
        assert bytes(c.read()) == b"#build-state example-1.2rc3\n"
        reply, informs = c.request("sensor-value", "an.int")
        assert informs[0].arguments[0] == b"1000000"  # milliseconds
        assert c.request("version-list")[0].arguments[0] == b"invalid"


def test_client_connected_sent_to_others(server):
    with connect(server) as first, connect(server) as second:
        inform = first.read()
        assert inform.name == "client-connected"
        assert b"127.0.0.1" in inform.arguments[0]
        with pytest.raises(TimeoutError):
            second.read(timeout=0.05)


def test_help(server):
    with connect(server) as c:
        reply, informs = c.request("help")
        names = [m.arguments[0].decode() for m in informs]
        assert names == sorted(names)
        assert {"halt", "help", "watchdog", "sensor-list", "client-list"} <= set(names)
        assert reply.arguments == [b"ok", str(len(informs)).encode()]
        reply, informs = c.request("help", "watchdog")
        assert reply.arguments == [b"ok", b"1"]
        doc = informs[0].arguments[1].decode()
        assert doc == inspect.cleandoc(DeviceServer.request_watchdog.__doc__)
        assert not doc.startswith(" ") and "\n        " not in doc
        reply, _ = c.request("help", "nope")
        assert reply.arguments[0] == b"fail"


def test_log_level_and_device_log(server):
    with connect(server) as c:
        assert c.request("log-level")[0].arguments == [b"ok", b"warn"]
        server.log.info("hidden %d", 1)
        server.log.warn("shown %d", 2, name="dev.sub")
        log = c.wait_inform("log")
        assert log.arguments[0] == b"warn"
        assert log.arguments[2:] == [b"dev.sub", b"shown 2"]
        assert c.request("log-level", "debug")[0].arguments == [b"ok", b"debug"]
        server.log.debug("now shown")
        assert c.wait_inform("log").arguments[3] == b"now shown"
        assert c.request("log-level", "loud")[0].arguments[0] == b"fail"


def test_python_logging_handler_bridge(server):
    logger = logging.getLogger("test.bridge")
    handler = KatcpLogHandler(server)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with connect(server) as c:
            logger.info("below the katcp level")
            # From another thread: the handler must marshal to the loop.
            t = threading.Thread(target=logger.error, args=("bad %s", "thing"))
            t.start()
            t.join()
            log = c.wait_inform("log")
            assert log.arguments[0] == b"error"
            assert log.arguments[2:] == [b"test.bridge", b"bad thing"]
            assert all(m.name != "log" for m in c.backlog)
    finally:
        logger.removeHandler(handler)


def test_device_logger_names():
    log = DeviceLogger(None)  # type: ignore[arg-type]
    assert log.level_name() == "warn"
    assert log.level_from_name(b"trace") == DeviceLogger.TRACE
    with pytest.raises(ValueError):
        log.level_from_name("nope")


def test_restart(server):
    with connect(server) as c:
        reply, _ = c.request("restart")
        assert reply.arguments[0] == b"fail"
        q: queue.Queue = queue.Queue()
        server.set_restart_queue(q)
        assert c.request("restart")[0].arguments == [b"ok"]
        assert q.get(timeout=TIMEOUT) is server


def test_client_list(server):
    with connect(server) as a, connect(server) as b:
        reply, informs = a.request("client-list", mid=2)
        assert reply.arguments == [b"ok", b"2"]
        addrs = {m.arguments[0] for m in informs}
        assert addrs == {"{}:{}".format(*s.sock.getsockname()[:2]).encode() for s in (a, b)}
        assert all(m.mid == b"2" for m in informs)


def test_sensor_list_and_value(server):
    with connect(server) as c:
        reply, informs = c.request("sensor-list")
        assert reply.arguments == [b"ok", b"3"]
        assert [m.arguments[0] for m in informs] == [b"a.float", b"a.string", b"an.int"]
        reply, informs = c.request("sensor-list", "an.int")
        assert informs[0].arguments == [
            b"an.int",
            b"An integer.",
            b"counts",
            b"integer",
            b"0",
            b"100",
        ]
        reply, informs = c.request("sensor-list", "/^a\\./")
        assert [m.arguments[0] for m in informs] == [b"a.float", b"a.string"]
        assert c.request("sensor-list", "missing")[0].arguments[0] == b"fail"
        assert c.request("sensor-list", "/zzz/")[0].arguments == [b"ok", b"0"]
        reply, informs = c.request("sensor-value", "an.int")
        assert bytes(informs[0]) == b"#sensor-value 1000.0 1 an.int nominal 3\n"
        assert c.request("sensor-value", "/float|int/")[0].arguments == [b"ok", b"2"]
        assert c.request("sensor-value", "nope")[0].arguments[0] == b"fail"
        assert c.request("sensor-value")[0].arguments == [b"ok", b"3"]


def test_version_list(server):
    server.extra_versions["fpga"] = ("fw-3", None)
    with connect(server) as c:
        reply, informs = c.request("version-list")
        assert reply.arguments == [b"ok", b"4"]
        rows = [m.arguments for m in informs]
        assert rows[0] == [b"katcp-protocol", str(server.PROTOCOL_INFO).encode()]
        assert rows[2] == [b"katcp-device", b"example-1.2", b"example-1.2rc3"]
        assert rows[3] == [b"fpga", b"fw-3"]


def test_request_timeout_hint():
    class Hinted(ExampleServer):
        PROTOCOL_INFO = ProtocolFlags(5, 1, "MIT")

        @request_timeout_hint(25)
        def request_slow(self, req, msg):
            """Slow."""
            return req.make_reply("ok")

    srv = Hinted("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        reply, informs = c.request("request-timeout-hint")
        assert reply.arguments == [b"ok", b"1"]
        assert informs[0].arguments == [b"slow", b"25.0"]
        reply, informs = c.request("request-timeout-hint", "watchdog")
        assert informs[0].arguments == [b"watchdog", b"0.0"]
        assert c.request("request-timeout-hint", "nope")[0].arguments[0] == b"fail"


def test_interface_changed_on_sensor_add_remove(server):
    with connect(server) as c:
        sensor = Sensor(Sensor.BOOLEAN, "new.one", "New.", "")
        server.add_sensor(sensor)
        assert c.wait_inform("interface-changed").arguments == [b"sensor", b"new.one", b"added"]
        assert server.has_sensor("new.one") and server.get_sensor("new.one") is sensor
        server.remove_sensor("new.one")
        assert c.wait_inform("interface-changed").arguments == [b"sensor", b"new.one", b"removed"]
        with pytest.raises(ValueError):
            server.get_sensor("new.one")
        assert len(server.get_sensors()) == 3


def test_halt_sends_disconnect_and_stops():
    srv = ExampleServer("127.0.0.1", 0)
    srv.start(timeout=TIMEOUT)
    assert srv.running()
    with connect(srv) as c, connect(srv) as other:
        c.send(Message.request("halt", mid=1))
        rest = c.read_until_closed()
        assert [bytes(m) for m in rest if m.name != "client-connected"] == [
            b"!halt[1] ok\n",
            b"#disconnect Device\\_server\\_shutting\\_down.\n",
        ]
        assert other.wait_inform("disconnect")
    srv.join(TIMEOUT)
    assert not srv.running()
