"""Standard handlers called directly return a future, as katcp-python's do (not a coroutine)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading

import pytest

from katcpx.message import Message
from katcpx.server import ClientRequestConnection

from .helpers import TIMEOUT, ExampleServer, connect, running


class Keeping(ExampleServer):
    """Keeps the connection of the last client, to build requests for direct calls."""

    def on_client_connect(self, conn):
        self.last_conn = conn
        self.have_conn = threading.Event()
        self.have_conn.set()
        return super().on_client_connect(conn)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("sensor-sampling", ("an.int", "event")),
        ("sensor-sampling-clear", ()),
    ],
)
@pytest.mark.parametrize("handler_thread", [True, False])
def test_direct_call_from_another_thread_returns_a_future(name, args, handler_thread):
    srv = Keeping("127.0.0.1", 0)
    srv.set_concurrency_options(handler_thread=handler_thread)
    with running(srv), connect(srv):
        assert srv.have_conn.wait(TIMEOUT)
        msg = Message.request(name, *args)
        req = ClientRequestConnection(srv.last_conn, msg)
        handler = getattr(srv, "request_" + name.replace("-", "_"))
        result = handler(req, msg)
        assert not inspect.iscoroutine(result)
        assert isinstance(result, concurrent.futures.Future)
        reply = result.result(TIMEOUT)
        assert reply.name == name and reply.reply_ok(), reply


def test_direct_call_on_the_loop_returns_an_asyncio_future():
    srv = Keeping("127.0.0.1", 0)
    with running(srv), connect(srv):
        assert srv.have_conn.wait(TIMEOUT)

        async def on_loop():
            msg = Message.request("sensor-sampling", "an.int", "event")
            req = ClientRequestConnection(srv.last_conn, msg)
            fut = srv.request_sensor_sampling(req, msg)
            assert isinstance(fut, asyncio.Future)
            return await fut

        reply = asyncio.run_coroutine_threadsafe(on_loop(), srv.binding.loop).result(TIMEOUT)
        assert reply.arguments == [b"ok", b"an.int", b"event"]


def test_client_list_called_directly_returns_its_reply():
    # katcp-python's request_client_list answers at once and returns the reply message.
    srv = Keeping("127.0.0.1", 0)
    with running(srv), connect(srv):
        assert srv.have_conn.wait(TIMEOUT)
        msg = Message.request("client-list")
        reply = srv.request_client_list(ClientRequestConnection(srv.last_conn, msg), msg)
        assert isinstance(reply, Message)
        assert reply.arguments == [b"ok", b"1"]


def test_client_list_answers_before_a_later_request():
    # Pipelined ?client-list then ?version-list: the client-list informs and reply come
    # first, as from katcp-python's server (its handler answers at once).
    srv = Keeping("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        assert srv.have_conn.wait(TIMEOUT)
        c.send_raw(b"?client-list[1]\n?version-list[2]\n")
        seen = []
        while not seen or seen[-1] != ("!", "version-list"):
            msg = c.read()
            if msg.name in ("client-list", "version-list"):
                seen.append((str(msg)[0], msg.name))
        assert seen[:2] == [("#", "client-list"), ("!", "client-list")], seen


def test_handlers_still_answer_over_the_wire():
    srv = Keeping("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        reply, informs = c.request("client-list")
        assert reply.arguments == [b"ok", b"1"] and len(informs) == 1
        assert c.request("sensor-sampling", "an.int", "event")[0].reply_ok()
        assert c.request("sensor-sampling-clear")[0].reply_ok()
        reply, _ = c.request("restart")
        assert reply.arguments[0] == b"fail" and b"restart queue" in reply.arguments[1]
        assert c.request("halt")[0].reply_ok()
        assert c.wait_inform("disconnect")
    assert not srv.running()
