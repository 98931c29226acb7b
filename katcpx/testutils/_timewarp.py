"""Timewarp test cases and loop helpers of katcp-python's ``katcp.testutils``.

A :class:`TimewarpAsyncTestCase`'s loop reads time from the test (``ioloop_time``, seconds),
which only moves when the test calls :meth:`~TimewarpAsyncTestCase.set_ioloop_time`, so
timeouts and periodic work are tested without waiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import tornado.testing
from tornado import gen
from tornado.concurrent import Future as tornado_Future
from tornado.concurrent import chain_future
from tornado.ioloop import IOLoop
from tornado.locks import Event

from ..crossing import LoopBinding
from ..errors import AsyncReply, FailReply
from ..message import Message
from ._helpers import request_handler

__all__ = [
    "AsyncWaitingMock",
    "TimewarpAsyncTestCase",
    "TimewarpAsyncTestCaseTimeAdvancer",
    "call_in_ioloop",
    "handle_mock_req",
]

logger = logging.getLogger("katcp.testutils")


class _WarpedLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock is the test's ``ioloop_time``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self._warp_clock = clock

    def time(self) -> float:
        return self._warp_clock()

    def settled(self) -> bool:
        """Whether nothing is ready to run and no timer is due at the current time."""
        now = self.time()
        ready, scheduled = self._ready, self._scheduled  # type: ignore[attr-defined]
        return not ready and not any(
            not handle.cancelled() and handle.when() <= now for handle in scheduled
        )


class TimewarpAsyncTestCase(tornado.testing.AsyncTestCase):
    """An ``AsyncTestCase`` whose loop time only advances by :meth:`set_ioloop_time`.

    Time starts at 0. Subclasses that override ``setUp`` must call the base ``setUp``.
    """

    #: Loop turns :meth:`wake_ioloop` waits at most for the loop to settle (bounds a
    #: callback that keeps rescheduling itself).
    MAX_WAKE_TURNS = 100

    def get_new_ioloop(self) -> IOLoop:
        self.ioloop_time: float = 0  # katcp-python's start value (an int)
        loop = self._warped_loop = _WarpedLoop(lambda: self.ioloop_time)
        ioloop = IOLoop(asyncio_loop=loop, make_current=False)
        # tornado's IOLoop.time() is time.time(), not its asyncio loop's clock: warp both.
        ioloop.time = lambda: self.ioloop_time

        self._loop_binding = LoopBinding()
        ioloop.add_callback(self._loop_binding.bind)
        return ioloop

    @property
    def ioloop_thread_id(self) -> int | None:
        """``threading.get_ident()`` of the loop's thread once it runs (katcp-python's)."""
        return self._loop_binding.thread_id

    def wake_ioloop(self) -> Any:
        """Return a future that resolves once the loop ran what is due at the current time.

        That is due timers, and the timers and callbacks they schedule for the same time
        (a strategy's timer re-armed for now), as katcp-python's loop ran them before the
        test resumed. At most :attr:`MAX_WAKE_TURNS` loop turns are waited for.
        """
        future: Any = tornado_Future()
        turns = 0

        def check() -> None:
            nonlocal turns
            turns += 1
            if future.done():
                return
            if turns < self.MAX_WAKE_TURNS and not self._warped_loop.settled():
                self.io_loop.add_callback(check)
            else:
                future.set_result(None)

        self.io_loop.add_callback(check)
        return future

    def set_ioloop_time(self, new_time: float, wake_ioloop: bool = True) -> Any:
        """Move the loop's clock forward to ``new_time`` seconds (never backwards).

        Returns
        -------
        Future or None
            With ``wake_ioloop``, a future resolving once the loop has turned.
        """
        logger.debug("setting ioloop time: %s", new_time)
        assert new_time > self.ioloop_time, "time must move forward"
        self.ioloop_time = new_time
        return self.wake_ioloop() if wake_ioloop else None


class TimewarpAsyncTestCaseTimeAdvancer(threading.Thread):
    """A thread that keeps advancing a :class:`TimewarpAsyncTestCase`'s time.

    Every ``1/rate`` seconds of real time it moves the test's time by ``quantum`` seconds,
    waiting each time for the loop to have turned. It stops at test cleanup.
    """

    def __init__(self, test_instance: Any, quantum: float = 0.05, rate: float = 1000.0) -> None:
        super().__init__(daemon=True)
        self.test_instance = test_instance
        self.quantum = quantum
        self.rate = rate
        self._running = threading.Event()
        self._stopped = threading.Event()

    def start(self) -> None:
        self.test_instance.addCleanup(self.stop)
        super().start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop advancing (``timeout``: first wait that long for it to have started)."""
        if timeout:
            self._running.wait(timeout)
        self._stopped.set()

    def run(self) -> None:
        self._running.set()
        while not self._stopped.is_set():
            step: concurrent.futures.Future[None] = concurrent.futures.Future()
            try:
                self.test_instance.io_loop.add_callback(self._advance, step)
            except RuntimeError:  # the loop is closed
                break
            while not self._stopped.is_set():
                try:
                    step.result(timeout=0.1)
                    break
                except concurrent.futures.TimeoutError:
                    continue
            time.sleep(1.0 / self.rate)

    async def _advance(self, step: concurrent.futures.Future[None]) -> None:
        test = self.test_instance
        try:
            await test.set_ioloop_time(test.ioloop_time + self.quantum)
        finally:
            step.set_result(None)


class AsyncWaitingMock(mock.Mock):
    """A ``Mock`` whose ``assert_wait_call_count(count, timeout=1)`` is a coroutine.

    The mock may be called on the waiting loop or from another thread.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (loop, event) of each coroutine waiting for calls; a call wakes each on its loop
        # (tornado's Event is not thread-safe).
        self.__dict__["_call_waiters"] = []
        self.__dict__["_call_waiters_lock"] = threading.Lock()

    def _increment_mock_call(self, *args: Any, **kwargs: Any) -> None:
        super()._increment_mock_call(*args, **kwargs)
        lock = self.__dict__.get("_call_waiters_lock")
        if lock is None:
            return
        with lock:
            waiters = list(self.__dict__["_call_waiters"])
        for ioloop, event in waiters:
            ioloop.add_callback(event.set)

    @gen.coroutine
    def assert_wait_call_count(self, count: int, timeout: float = 1.0) -> Any:
        """Resolve True once called ``count`` times; AssertionError after ``timeout`` s.

        ``timeout`` is in seconds of real time (as katcp-python's, which reads
        ``time.time()``), also under a :class:`TimewarpAsyncTestCase`.
        """
        ioloop, event = waiter = (IOLoop.current(), Event())
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            ioloop.add_callback(event.set)

        # The timeout runs on a real-time timer: a timewarped loop's clock may stand still.
        timer = threading.Timer(max(timeout, 0.0), expire)
        timer.daemon = True
        with self.__dict__["_call_waiters_lock"]:
            self.__dict__["_call_waiters"].append(waiter)
        timer.start()
        try:
            while self.call_count < count and not expired.is_set():
                event.clear()
                if self.call_count >= count:
                    break
                yield event.wait()
        finally:
            timer.cancel()
            with self.__dict__["_call_waiters_lock"]:
                self.__dict__["_call_waiters"].remove(waiter)
        assert self.call_count >= count, f"called {self.call_count} times, expected {count}"
        return True


def handle_mock_req(dev: Any, req: Any) -> Any:
    """Handle a :func:`~katcpx.testutils.mock_req` request with ``dev``'s handler.

    The outcome is the one a client of the running server gets (katcp-python's
    ``handle_mock_req`` runs the server's own dispatch): ``FailReply("why")`` replies
    ``fail why``, ``AsyncReply`` leaves the reply to the handler, another exception replies
    ``fail`` with its text and logs its traceback, and a reply after the handler already
    replied is dropped.

    Returns
    -------
    Future
        Resolves with ``(reply_msg, inform_msgs)`` once the handler replied.

    A request ``dev`` has no handler for gets ``invalid Unknown request.``, as from the server.
    """
    future = req.reply_and_inform_msgs_future
    handler = request_handler(dev, req.msg.name)
    if handler is None:
        # The server's reply and log line (katcp-python's handle_mock_req runs its dispatch).
        dev.logger.error("%s INVALID: Unknown request.", req.msg.name[:200])
        req.reply("invalid", "Unknown request.")
        return future

    def send(reply: Any) -> None:
        if future.done():  # the handler replied itself
            return
        if isinstance(reply, Message):
            req.reply(*reply.arguments)
        elif isinstance(reply, tuple | list):
            req.reply(*reply)

    def send_exception(exc: BaseException) -> None:
        if isinstance(exc, AsyncReply):
            return
        if isinstance(exc, FailReply):
            dev.logger.error("Request %s FAIL: %s", req.msg.name, exc)
            send(Message.reply(req.msg.name, "fail", str(exc)))
        else:
            exc_info = (type(exc), exc, exc.__traceback__)
            send(dev.create_exception_reply_and_log(req.msg, exc_info))

    def done(f: Any) -> None:
        if f.cancelled():
            send(Message.reply(req.msg.name, "fail", "Request cancelled."))
        elif f.exception() is not None:
            send_exception(f.exception())
        else:
            send(f.result())

    try:
        result = handler(req, req.msg)
    except Exception as exc:
        send_exception(exc)
        return future
    if asyncio.iscoroutine(result):
        result = asyncio.ensure_future(result)
    if asyncio.isfuture(result) or isinstance(result, concurrent.futures.Future):
        result.add_done_callback(done)
    else:
        send(result)
    return future


def call_in_ioloop(ioloop: IOLoop, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` on ``ioloop`` from another thread and return its result.

    A coroutine or future result is waited for. ``ioloop_timeout`` (default 5 s) bounds
    the wait and is not passed to ``fn``.

    Raises
    ------
    concurrent.futures.TimeoutError
        If no result comes within ``ioloop_timeout``.
    Exception
        Whatever ``fn`` raised.
    """
    timeout = kwargs.pop("ioloop_timeout", 5)
    result: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            result.set_exception(exc)
            return
        if asyncio.iscoroutine(value) or asyncio.isfuture(value):
            chain_future(asyncio.ensure_future(value), result)
        else:
            result.set_result(value)

    ioloop.add_callback(run)
    return result.result(timeout=timeout)
