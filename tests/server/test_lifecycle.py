"""Starting, stopping and threading of servers."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from tornado.ioloop import IOLoop

from katcpx.message import Message
from katcpx.server import DeviceServer

from .helpers import TIMEOUT, Client, ExampleServer, connect, running


def test_managed_lifecycle():
    srv = ExampleServer("127.0.0.1", 0)
    srv.setDaemon(True)
    assert not srv.running()
    assert srv.start(timeout=TIMEOUT) is None  # as katcp-python's DeviceServer.start
    assert srv.running() and srv.wait_running(TIMEOUT)
    host, port = srv.bind_address
    assert host == "127.0.0.1" and port > 0
    assert srv._thread is not None and srv._thread.daemon
    with pytest.raises(RuntimeError):
        srv.start()
    assert srv.sync_with_ioloop(TIMEOUT) is None
    srv.until_running().result(TIMEOUT)
    stopped = srv.stop()
    stopped.result(TIMEOUT)
    srv.join(TIMEOUT)
    assert not srv._thread.is_alive()
    assert not srv.running()
    srv.until_stopped().result(TIMEOUT)
    # The port is free again.
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_restart_after_stop():
    srv = ExampleServer("127.0.0.1", 0)
    with running(srv):
        pass
    with running(srv), connect(srv) as c:
        assert c.request("watchdog")[0].reply_ok()


def test_managed_start_leaves_current_ioloop_alone():
    async def main():
        before = IOLoop.current()
        srv = ExampleServer("127.0.0.1", 0)
        srv.start()
        await asyncio.wrap_future(srv.until_running())
        assert IOLoop.current() is before
        assert srv.ioloop is not before
        assert srv.ioloop.asyncio_loop is not asyncio.get_running_loop()
        await asyncio.wrap_future(srv.stop())
        srv.join(TIMEOUT)

    asyncio.run(main())


def test_start_from_other_thread_does_not_touch_its_loop():
    result = {}

    def other():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        srv = ExampleServer("127.0.0.1", 0)
        srv.start(timeout=TIMEOUT)
        result["same"] = asyncio.get_event_loop() is loop
        srv.stop().result(TIMEOUT)
        srv.join(TIMEOUT)
        loop.close()

    t = threading.Thread(target=other)
    t.start()
    t.join(TIMEOUT * 2)
    assert result == {"same": True}


@pytest.mark.parametrize("kind", ["default", "asyncio-loop", "tornado-ioloop"])
def test_set_ioloop_runs_on_callers_loop(kind):
    async def main():
        srv = ExampleServer("127.0.0.1", 0)
        srv.set_concurrency_options(False, False)
        if kind == "default":
            srv.set_ioloop()
        elif kind == "asyncio-loop":
            srv.set_ioloop(asyncio.get_running_loop())
        else:
            srv.set_ioloop(IOLoop.current())
        srv.start()
        await srv.until_running(timeout=TIMEOUT)
        assert srv.binding.loop is asyncio.get_running_loop()
        assert srv.ioloop is IOLoop.current()
        reader, writer = await asyncio.open_connection(*srv.bind_address)
        for _ in range(3):
            await reader.readline()
        writer.write(b"?watchdog[1]\n")
        assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"!watchdog[1] ok\n"
        fut = srv.sync_with_ioloop()
        await fut
        srv.stop()
        await srv.until_stopped(timeout=TIMEOUT)
        assert not srv.running()
        writer.close()

    asyncio.run(main())


def test_ipv6_and_dual_stack():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv = ExampleServer("::1", 0)
    with running(srv), Client(("::1", srv.bind_address[1])) as c:
        assert c.read().name == "version-connect"
    srv = ExampleServer("", 0)
    with running(srv):
        port = srv.bind_address[1]
        for host in ("127.0.0.1", "::1"):
            with Client((host, port)) as c:
                assert c.read().name == "version-connect"


def test_handler_thread_mode_runs_sync_handlers_off_the_loop():
    class T(ExampleServer):
        def request_where(self, req, msg):
            """Report the handling thread."""
            return req.make_reply("ok", threading.current_thread().name)

        def request_block(self, req, msg):
            """Block the handler thread."""
            self.gate.wait(TIMEOUT)
            return req.make_reply("ok")

        def setup_sensors(self):
            super().setup_sensors()
            self.gate = threading.Event()

    srv = T("127.0.0.1", 0)  # DeviceServer default: thread_safe, handler_thread
    with running(srv), connect(srv) as a, connect(srv) as b:
        a.backlog.clear()
        name = a.request("where")[0].arguments[1].decode()
        assert "message_handler" in name
        b.request("sensor-sampling", "an.int", "period", "0.01")
        b.backlog.clear()
        # A blocking handler holds up other clients' device requests (single handler
        # thread; read-only standard requests go round it, see test_liveness) ...
        a.send(Message.request("block"))
        b.send(Message.request("where"))
        # ... but not sampling, which runs on the loop.
        for _ in range(3):
            assert b.read().name == "sensor-status"
        srv.gate.set()
        while (msg := b.read()).name == "sensor-status":
            pass
        assert msg.name == "where" and msg.mtype == Message.REPLY


def test_concurrency_option_validation():
    srv = ExampleServer("127.0.0.1", 0)
    with pytest.raises(ValueError):
        srv.set_concurrency_options(thread_safe=False, handler_thread=True)


def test_protocol_major_checked():
    from katcpx.flags import ProtocolFlags

    class V3(DeviceServer):
        PROTOCOL_INFO = ProtocolFlags(3, 0, "")

        def setup_sensors(self):
            pass

    with pytest.raises(ValueError):
        V3("127.0.0.1", 0)


def test_start_and_stop_hooks_run_on_the_loop_around_clients():
    events: list[tuple[str, bool, int]] = []

    class Hooked(ExampleServer):
        def on_server_start(self):
            events.append(("start", self.ioloop is IOLoop.current(), len(self._connections)))

        def on_server_stop(self):
            events.append(("stop", self.ioloop is IOLoop.current(), len(self._connections)))
            raise RuntimeError("logged, not fatal")

    srv = Hooked("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        assert c.request("watchdog")[0].reply_ok()
        assert events == [("start", True, 0)]
    # The stop hook ran on the loop after every client was disconnected; its error was only
    # logged, and the server stopped anyway.
    assert events[1:] == [("stop", True, 0)]
    assert not srv.running()


def test_failing_start_hook_stops_the_server_starting():
    class Broken(ExampleServer):
        def on_server_start(self):
            raise RuntimeError("no hardware")

    srv = Broken("127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="no hardware"):
        srv.start(timeout=TIMEOUT)
    assert not srv.running()
