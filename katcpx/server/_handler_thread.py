"""The request-handler thread of a server in ``handler_thread`` mode (no I/O).

katcp-python runs handlers on one thread of its own, which lives as long as its server.
``concurrent.futures.ThreadPoolExecutor`` cannot stand in for it: at interpreter shutdown
(a script whose main thread ended after ``server.start()``, while the server's non-daemon
loop thread keeps the process alive) every executor refuses new work with "cannot schedule
new futures after interpreter shutdown", and the server would stop answering. This thread
takes work until its server shuts it down, whatever the interpreter is doing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import queue
import threading
from collections.abc import Callable
from typing import Any

from .._joinable_thread import JoinableThread

__all__ = ["HandlerThread", "HandlerThreadStopped", "is_coroutine_handler"]


class HandlerThreadStopped(RuntimeError):
    """Work was submitted to a :class:`HandlerThread` after :meth:`HandlerThread.shutdown`."""


_STOP = object()


class HandlerThread:
    """One worker thread running submitted calls in order.

    Parameters
    ----------
    name
        Thread name (shown in tracebacks and debuggers).
    event_loop
        Called on the thread when it starts; the loop it returns (the server's) becomes the
        thread's current event loop, so handlers may create ``tornado.concurrent.Future()``
        (an ``asyncio.Future`` since tornado 5) as they did under katcp-python. Such a
        future belongs to the server's loop and must be resolved there
        (``ioloop.add_callback``/``call_later``), as katcp-python's examples do.

    Notes
    -----
    The thread is a daemon: the server's loop thread decides how long the process lives,
    as in katcp-python. It starts with the first :meth:`submit`.
    """

    def __init__(
        self, name: str, event_loop: Callable[[], asyncio.AbstractEventLoop | None] | None = None
    ) -> None:
        self._name = name
        self._event_loop = event_loop
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: JoinableThread | None = None
        self._stopped = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args)`` on the thread; returns a future of its result.

        Raises
        ------
        HandlerThreadStopped
            If :meth:`shutdown` was called.
        """
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._stopped:
                raise HandlerThreadStopped(f"{self._name} has stopped")
            if self._thread is None:
                self._thread = JoinableThread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((fut, fn, args))
        return fut

    def shutdown(self) -> None:
        """Stop taking work; calls already submitted still run, then the thread ends."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._queue.put(_STOP)

    def join(self, timeout: float | None = None) -> bool:
        """Wait (at most `timeout` seconds) for the thread to end after :meth:`shutdown`.

        Returns whether it ended (True at once if it never started, or when called from the
        thread itself, which cannot wait for its own end).
        """
        with self._lock:
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        if self._event_loop is not None:
            loop = self._event_loop()
            if loop is not None:
                asyncio.set_event_loop(loop)
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # the future carries it to whoever waits
                fut.set_exception(exc)
            else:
                fut.set_result(result)


def is_coroutine_handler(handler: Callable[..., Any]) -> bool:
    """Whether `handler`, or a function it decorates, is a coroutine function.

    ``@tornado.gen.coroutine`` functions (under ``@request``/``@return_reply``/
    ``@concurrent_reply``, which keep ``__wrapped__``) and ``async def`` functions need
    the server's event loop from their first line: katcp-python 0.9.3 runs them, so a
    server in handler-thread mode calls them on its loop rather than in its handler thread.
    """
    seen = 0
    func: Any = handler
    while func is not None and seen < 32:  # a bound on pathological __wrapped__ chains
        if getattr(func, "__tornado_coroutine__", False) or inspect.iscoroutinefunction(func):
            return True
        func = getattr(func, "__wrapped__", None)
        seen += 1
    return False
