"""The one way across threads to an event loop: which thread runs it, call on it, call and wait.

katcp-python's API is thread-safe: a hardware thread sets sensor values, a script thread sends
requests, a handler thread replies, while one event-loop thread owns every socket. Each of
those crossings goes through a :class:`LoopBinding`, which holds the only copy of the loop and
of the id of the thread running it. A server shares its binding with its connections, its
sampling manager and its operations; a client has its own.

Layer: future helpers (stdlib ``asyncio`` and ``threading`` only).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopBinding", "LoopGone"]

T = TypeVar("T")


class LoopGone(RuntimeError):
    """The loop a call was handed to is not running (never bound, stopped or closed)."""


class LoopBinding:
    """An event loop, the thread that runs it, and the ways onto it from other threads.

    Calls handed over from other threads are batched: only the first call of a burst wakes
    the loop (one write to its self-pipe), the rest join the queue that wake-up drains, and
    calls from one thread run in the order they were made. A busy hardware thread setting
    sensors, or a handler thread sending replies, therefore costs one system call per loop
    turn, not one per call.

    The binding starts unbound; the owner calls :meth:`bind` on the loop's thread once the
    loop runs, and :meth:`unbind` when it stops.
    """

    def __init__(self) -> None:
        #: The bound loop, or None. Read it; only :meth:`bind`/:meth:`unbind` change it.
        self.loop: asyncio.AbstractEventLoop | None = None
        #: ``threading.get_ident()`` of the thread running the loop, or None when unbound.
        #: A plain attribute, so a hot path (a sensor update) can compare it inline.
        self.thread_id: int | None = None
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._wakeup_scheduled = False

    # -- binding ------------------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Bind to `loop` (default: the running loop), run by the calling thread.

        Raises
        ------
        RuntimeError
            With no `loop` given and no loop running in this thread.
        """
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.thread_id = threading.get_ident()

    def unbind(self) -> None:
        """Forget the loop: later hand-offs raise :class:`LoopGone` (or are dropped by
        :meth:`call`), and :meth:`on_loop` is false everywhere."""
        self.loop = None
        self.thread_id = None
        with self._lock:
            self._calls.clear()
            self._wakeup_scheduled = False

    @property
    def bound(self) -> bool:
        """True between :meth:`bind` and :meth:`unbind`."""
        return self.loop is not None

    def on_loop(self) -> bool:
        """True when called from the thread running the bound loop."""
        return self.thread_id is not None and threading.get_ident() == self.thread_id

    # -- crossing -----------------------------------------------------------------------------

    def call(self, func: Callable[..., Any], *args: Any) -> bool:
        """Run ``func(*args)`` on the loop soon, from any thread (batched, in order).

        Returns
        -------
        bool
            False when the call was dropped because no loop is bound or it is closed (the
            owner has stopped); the caller decides whether that is worth a log line.
        """
        loop = self.loop
        if loop is None:
            return False
        with self._lock:
            self._calls.append((func, args))
            if self._wakeup_scheduled:
                return True
            self._wakeup_scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # loop closed between the check and the call
            with self._lock:
                self._calls.clear()
                self._wakeup_scheduled = False
            return False
        return True

    def call_here_or_soon(self, func: Callable[..., Any], *args: Any) -> bool:
        """Run ``func(*args)`` now when on the loop's thread, else as :meth:`call` does."""
        if self.on_loop():
            func(*args)
            return True
        return self.call(func, *args)

    def call_and_wait(self, func: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run ``func(*args)`` on the loop and return its result (or raise its exception).

        On the loop's own thread the call runs at once (waiting would deadlock).

        Parameters
        ----------
        timeout
            Seconds to wait, or None to wait as long as it takes.

        Raises
        ------
        LoopGone
            No loop is bound, or it closed before running the call.
        TimeoutError
            The call did not finish within `timeout` seconds.
        """
        if self.on_loop():
            return func(*args)
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not done.set_running_or_notify_cancel():
                return
            try:
                done.set_result(func(*args))
            except BaseException as exc:  # handed back to the waiting thread
                done.set_exception(exc)

        if not self.call(run):
            raise LoopGone(f"no running event loop to call {func!r} on")
        try:
            return done.result(timeout)
        except concurrent.futures.TimeoutError:
            done.cancel()
            raise TimeoutError(f"{func!r} did not run on the loop within {timeout} s") from None

    def run_coroutine(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the loop from another thread; its result comes as a
        ``concurrent.futures.Future``.

        Raises
        ------
        LoopGone
            No loop is bound, or it is closed (`coro` is closed, so no warning follows).
        """
        loop = self.loop
        if loop is None or loop.is_closed():
            coro.close()
            raise LoopGone("no running event loop to run the coroutine on")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def _drain(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, deque()
            self._wakeup_scheduled = False
        for func, args in calls:
            try:
                func(*args)
            except Exception as exc:  # one failing call must not lose the rest
                loop = self.loop
                if loop is not None:
                    loop.call_exception_handler(
                        {"message": f"error in {func!r} handed to the loop", "exception": exc}
                    )
