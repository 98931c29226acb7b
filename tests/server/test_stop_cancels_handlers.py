"""Stopping a server (``?halt`` or ``stop()``) cancels its async request handlers still
running, cleanly: each gets ``CancelledError`` (so no "Task was destroyed but it is
pending!" when the loop ends). Their clients are disconnected anyway. A handler running in
the handler thread is not cancelled: ``join()`` waits for it, as katcp-python's."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from .helpers import TIMEOUT, ExampleServer, connect


class Slow(ExampleServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.finished_sync = threading.Event()

    async def request_slow(self, req, msg):
        """Wait for ever (until cancelled)."""
        self.started.set()
        try:
            await asyncio.Future()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    def request_slowsync(self, req, msg):
        """Block the handler thread a moment."""
        self.started.set()
        time.sleep(0.5)
        self.finished_sync.set()
        return req.make_reply("ok")


@pytest.mark.parametrize("how", ["halt", "stop"])
@pytest.mark.parametrize("handler_thread", [True, False])
def test_stop_cancels_running_async_handlers(how, handler_thread):
    srv = Slow("127.0.0.1", 0)
    srv.set_concurrency_options(handler_thread=handler_thread)
    srv.start(timeout=TIMEOUT)
    try:
        with connect(srv) as busy, connect(srv) as admin:
            busy.send_raw(b"?slow\n")
            assert srv.started.wait(TIMEOUT)
            if how == "halt":
                assert admin.request("halt")[0].reply_ok()
            else:
                srv.stop()
            srv.join(TIMEOUT)
            assert not srv.running()
            assert srv.cancelled.is_set(), "the running handler was not cancelled"
            names = [m.name for m in busy.read_until_closed(TIMEOUT)]
            assert names[-1:] == ["disconnect"], names
    finally:
        srv.stop()
        srv.join(TIMEOUT)


def test_join_still_waits_for_a_handler_in_the_handler_thread():
    srv = Slow("127.0.0.1", 0)
    srv.set_concurrency_options(handler_thread=True)
    srv.start(timeout=TIMEOUT)
    try:
        with connect(srv) as busy:
            busy.send_raw(b"?slowsync\n")
            assert srv.started.wait(TIMEOUT)
            srv.stop()
            srv.join(TIMEOUT)
            assert srv.finished_sync.is_set()
    finally:
        srv.stop()
        srv.join(TIMEOUT)
