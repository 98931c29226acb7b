"""Request dispatch: handler kinds, message ids, errors, ordering, dynamic requests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from katcpx.errors import AsyncReply, FailReply
from katcpx.flags import ProtocolFlags
from katcpx.kattypes import (
    Int,
    Str,
    concurrent_reply,
    has_katcp_protocol_flags,
    minimum_katcp_version,
    request,
    return_reply,
)
from katcpx.message import Message
from katcpx.server import AsyncDeviceServer, DeviceMetaclass, DeviceServer, DeviceServerBase

from .helpers import TIMEOUT, connect, running


class Handlers(DeviceServer):
    """Every kind of handler the server accepts."""

    def setup_sensors(self) -> None:
        self.gate = threading.Event()
        self.later: list = []

    def request_msg(self, req, msg):
        """Return a reply message."""
        return req.make_reply("ok", *msg.arguments)

    @request(Int(), Str())
    @return_reply(Int(), Str())
    def request_typed(self, req, number, text):
        """Decorated handler returning a tuple."""
        return ("ok", number + 1, text.upper())

    async def request_annotated(self, req, a: int, b: str = "x") -> tuple[int, str]:
        """Annotated handler."""
        return a * 2, b

    def request_failing(self, req, msg):
        """Raise FailReply."""
        raise FailReply("no can do")

    def request_broken(self, req, msg):
        """Raise an unexpected exception."""
        raise ZeroDivisionError("division by zero here")

    def request_later(self, req, msg):
        """Reply later through req.reply."""
        self.later.append(req)
        raise AsyncReply()

    def request_future(self, req, msg):
        """Return a concurrent future."""
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def work():
            self.gate.wait(TIMEOUT)
            fut.set_result(req.make_reply("ok", "future"))

        threading.Thread(target=work).start()
        return fut

    async def request_coro(self, req, msg):
        """Native coroutine handler sending informs."""
        req.inform("one")
        await asyncio.sleep(0.01)
        req.inform("two")
        return req.make_reply("ok", 2)

    async def request_coro_fail(self, req, msg):
        """Coroutine raising FailReply after a suspension."""
        await asyncio.sleep(0)
        raise FailReply("async failure")

    @concurrent_reply
    async def request_gated(self, req, msg):
        """Concurrent handler that waits for the gate."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.gate.wait, TIMEOUT)
        return req.make_reply("ok", "gated")

    async def request_ordered(self, req, msg):
        """Non-concurrent async handler that waits for the gate."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.gate.wait, TIMEOUT)
        return req.make_reply("ok", "ordered")


@pytest.fixture(params=["async", "handler-thread"])
def server(request):
    srv = Handlers("127.0.0.1", 0)
    if request.param == "async":
        srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    with running(srv):
        yield srv


def test_handler_kinds_and_mids(server):
    with connect(server) as c:
        reply, _ = c.request("msg", "a", "b c", mid=7)
        assert bytes(reply) == b"!msg[7] ok a b\\_c\n"
        reply, _ = c.request("typed", 41, "hi", mid=8)
        assert bytes(reply) == b"!typed[8] ok 42 HI\n"
        reply, _ = c.request("annotated", 5)
        assert reply.arguments == [b"ok", b"10", b"x"]
        reply, informs = c.request("coro", mid=9)
        assert [bytes(m) for m in informs] == [b"#coro[9] one\n", b"#coro[9] two\n"]
        assert bytes(reply) == b"!coro[9] ok 2\n"
        reply, _ = c.request("coro-fail", mid=10)
        assert bytes(reply) == b"!coro-fail[10] fail async\\_failure\n"
        reply, _ = c.request("failing", mid=11)
        assert bytes(reply) == b"!failing[11] fail no\\_can\\_do\n"


def test_unknown_request_is_invalid(server):
    with connect(server) as c:
        reply, _ = c.request("no-such-thing", mid=3)
        assert bytes(reply) == b"!no-such-thing[3] invalid Unknown\\_request.\n"


def test_exception_gives_short_fail_without_paths(server, caplog):
    with connect(server) as c:
        reply, _ = c.request("broken", mid=4)
        assert reply.arguments[0] == b"fail"
        text = reply.arguments[1].decode()
        assert text == "ZeroDivisionError: division by zero here"
        assert "/" not in text and "Traceback" not in text
        # The server is still fine afterwards.
        assert c.request("watchdog")[0].reply_ok()
    assert any("Traceback" in r.getMessage() or r.exc_info for r in caplog.records)


def test_traceback_option_limits_frames_and_strips_paths():
    class Deep(Handlers):
        SEND_TRACEBACKS = True

        def request_deep(self, req, msg):
            """Recurse, then fail."""

            def recurse(n):
                if n == 0:
                    raise ValueError("bottom")
                recurse(n - 1)

            recurse(10)

    srv = Deep("127.0.0.1", 0, tb_limit=3)
    srv.set_concurrency_options(False, False)
    with running(srv), connect(srv) as c:
        reply, _ = c.request("deep")
        text = reply.arguments[1].decode()
        assert text.startswith("Traceback")
        assert text.count('File "') == 3
        assert "ValueError: bottom" in text
        assert 'File "/' not in text


def test_async_reply_later(server):
    with connect(server) as c:
        c.send(Message.request("later", mid=5))
        with pytest.raises(TimeoutError):
            c.read(timeout=0.1)
        req = server.later.pop()
        req.reply("ok", "late")  # from a foreign thread
        assert bytes(c.read()) == b"!later[5] ok late\n"
        with pytest.raises(RuntimeError):
            req.reply("ok")


def test_future_handler_blocks_following_requests(server):
    with connect(server) as c:
        c.send(Message.request("future", mid=1))
        c.send(Message.request("msg", "x", mid=2))
        with pytest.raises(TimeoutError):
            c.read(timeout=0.1)  # ?msg waits for the future: device requests are ordered
        server.gate.set()
        assert bytes(c.read()) == b"!future[1] ok future\n"
        assert bytes(c.read()) == b"!msg[2] ok x\n"


def test_ordered_and_concurrent_handlers(server):
    with connect(server) as c:
        c.send(Message.request("gated", mid=1))
        c.send(Message.request("msg", "x", mid=2))
        # The concurrent handler does not hold up the next request.
        assert bytes(c.read()) == b"!msg[2] ok x\n"
        c.send(Message.request("ordered", mid=3))
        c.send(Message.request("msg", "y", mid=4))
        with pytest.raises(TimeoutError):
            c.read(timeout=0.1)
        server.gate.set()
        got = {bytes(c.read()) for _ in range(3)}
        assert got == {b"!gated[1] ok gated\n", b"!ordered[3] ok ordered\n", b"!msg[4] ok y\n"}


def test_unparseable_line_logs_to_that_client_only(server):
    with connect(server) as bad, connect(server) as good:
        assert bad.read().name == "client-connected"  # good connected after bad
        bad.send_raw(b"this is not katcp\n?watchdog\n")
        log = bad.read()
        assert log.name == "log" and log.arguments[0] == b"error"
        assert bad.read().name == "watchdog"
        reply, _ = good.request("watchdog")
        assert reply.reply_ok()
        assert all(m.name != "log" for m in good.backlog)


def test_metaclass_names_and_docstring_required():
    class A(DeviceServerBase):
        def request_foo_bar(self, req, msg):
            """Doc."""
            return req.make_reply("ok")

        def inform_thing(self, conn, msg):
            """Doc."""

    assert "foo-bar" in A._request_handlers
    assert "thing" in A._inform_handlers
    assert "inform" not in A._reply_handlers  # reply_inform is not a handler
    with pytest.raises(TypeError, match="docstring"):

        class B(DeviceServerBase):
            def request_nodoc(self, req, msg):
                return req.make_reply("ok")


def test_metaclass_filters_by_protocol():
    class V4(DeviceServer):
        PROTOCOL_INFO = ProtocolFlags(4, 0, "M")

        def setup_sensors(self):
            pass

        @minimum_katcp_version(5)
        def request_new(self, req, msg):
            """v5 only."""

    class V51(DeviceServer):
        PROTOCOL_INFO = ProtocolFlags(5, 1, "MIT")

        def setup_sensors(self):
            pass

        @has_katcp_protocol_flags([ProtocolFlags.BULK_SET_SENSOR_SAMPLING])
        def request_bulky(self, req, msg):
            """Needs B."""

    assert "new" not in V4._request_handlers
    assert "version-list" not in V4._request_handlers
    assert "request-timeout-hint" not in V4._request_handlers
    assert "request-timeout-hint" in V51._request_handlers
    assert "bulky" not in V51._request_handlers
    assert "version-list" in V51._request_handlers
    assert isinstance(V51, DeviceMetaclass)
    assert V51.check_protocol(V51.request_watchdog)


def test_prepare_request_handler_called_once(monkeypatch):
    import katcpx.kattypes as kattypes

    calls = []
    real = kattypes.prepare_request_handler

    def spy(func, major=5):
        calls.append(func.__name__)
        return real(func, major)

    monkeypatch.setattr(kattypes, "prepare_request_handler", spy)

    class A(DeviceServerBase):
        def request_x(self, req, msg):
            """X."""

    class B(A):
        def request_y(self, req, msg):
            """Y."""

    assert calls.count("request_x") == 1
    assert calls.count("request_y") == 1


def test_dynamic_requests(server):
    with connect(server) as c, connect(server) as other:

        def request_dyn(self, req, msg):
            """A dynamic request."""
            return req.make_reply("ok", "dynamic")

        server.add_request_handler("dyn", request_dyn)
        changed = c.wait_inform("interface-changed")
        assert changed.arguments == [b"request", b"dyn", b"added"]
        assert other.wait_inform("interface-changed").arguments[2] == b"added"
        assert c.request("dyn")[0].arguments == [b"ok", b"dynamic"]
        reply, informs = c.request("help", "dyn")
        assert informs[0].arguments == [b"dyn", b"A dynamic request."]
        server.remove_request_handler("dyn")
        changed = c.wait_inform("interface-changed")
        assert changed.arguments == [b"request", b"dyn", b"removed"]
        assert c.request("dyn")[0].arguments[0] == b"invalid"
        # Only this instance changed.
        assert "dyn" not in type(server)._request_handlers


def test_async_device_server_in_asyncio_run():
    class A(AsyncDeviceServer):
        def setup_sensors(self):
            pass

    async def main():
        srv = A("127.0.0.1", 0)
        srv.start()
        await srv.until_running(timeout=TIMEOUT)
        reader, writer = await asyncio.open_connection(*srv.bind_address)
        for _ in range(3):
            await reader.readline()
        writer.write(b"?watchdog[1]\n")
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert line == b"!watchdog[1] ok\n"
        assert srv.ioloop is not None
        assert srv.ioloop.asyncio_loop is asyncio.get_running_loop()
        await asyncio.wrap_future(srv.stop())
        await srv.until_stopped(timeout=TIMEOUT)
        assert (await asyncio.wait_for(reader.readline(), TIMEOUT)).startswith(b"#disconnect")
        writer.close()

    asyncio.run(main())
