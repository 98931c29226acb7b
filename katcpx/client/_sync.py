"""Thread and loop plumbing shared by the clients: state flags and the managed loop thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from tornado.platform.asyncio import AsyncIOLoop

from .._compat import wait_for
from .._joinable_thread import JoinableThread
from ..crossing import LoopBinding


class StateEvent:
    """A flag set and cleared on the client's loop, awaitable from any loop, waitable from threads.

    katcp-python's ``AsyncEvent`` plays this role. ``set`` wakes waiters on whatever loop they
    await from, so a managed client's state can be awaited from the caller's own loop: each
    waiter awaits a ``concurrent.futures.Future`` (safe to resolve from any thread) through
    ``asyncio.wrap_future``, which hands the wake-up to the waiter's own loop.
    """

    __slots__ = ("_flag", "_lock", "_tevent", "_waiters")

    def __init__(self) -> None:
        self._flag = False
        self._tevent = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[concurrent.futures.Future[bool]] = []

    def is_set(self) -> bool:
        """Return whether the flag is set."""
        return self._flag

    isSet = is_set  # katcp-python spelling

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        with self._lock:
            if self._flag:
                return
            self._flag = True
            self._tevent.set()
            waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if fut.set_running_or_notify_cancel():  # false: its waiter gave up
                fut.set_result(True)

    def clear(self) -> None:
        """Clear the flag."""
        with self._lock:
            self._flag = False
            self._tevent.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block the calling thread until the flag is set; return the flag."""
        return self._tevent.wait(timeout)

    async def until_set(self, timeout: float | None = None) -> bool:
        """Wait, in any running loop, until the flag is set.

        Raises
        ------
        WaitTimeout
            If `timeout` seconds pass first (a ``TimeoutError`` and an
            ``asyncio.TimeoutError`` on every Python version).
        """
        with self._lock:
            if self._flag:
                return True
            fut: concurrent.futures.Future[bool] = concurrent.futures.Future()
            self._waiters.append(fut)
        try:
            if timeout is None:
                await asyncio.wrap_future(fut)
            else:
                await wait_for(asyncio.wrap_future(fut), timeout)
        finally:
            with self._lock:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        return True


class LoopThread:
    """A tornado IOLoop running in a thread of its own (katcp-python's managed ioloop).

    The loop is created inside the new thread, so the caller's current IOLoop is untouched.
    The thread binds the client's `binding` to the loop before running it and unbinds it
    when the loop ends, so hand-overs work from the moment :meth:`start` returns and fail
    at once after the loop has gone.
    """

    def __init__(self, name: str, binding: LoopBinding) -> None:
        self.name = name
        self.daemon = True
        self.thread: JoinableThread | None = None
        self.ioloop: AsyncIOLoop | None = None
        self._binding = binding

    def start(self) -> AsyncIOLoop:
        """Start the thread and return its IOLoop once the loop exists."""
        ready = threading.Event()
        binding = self._binding

        def run() -> None:
            ioloop = AsyncIOLoop()
            self.ioloop = ioloop
            asyncio.set_event_loop(ioloop.asyncio_loop)
            binding.bind(ioloop.asyncio_loop)
            ioloop.add_callback(ready.set)
            try:
                ioloop.start()
            finally:
                binding.unbind()
                ioloop.close(all_fds=True)
                ready.set()

        self.thread = JoinableThread(target=run, name=self.name, daemon=self.daemon)
        self.thread.start()
        ready.wait()
        assert self.ioloop is not None
        return self.ioloop

    def stop(self) -> None:
        """Ask the loop to stop after its current turn (from any thread)."""
        if self.ioloop is not None:
            self._binding.call(self.ioloop.stop)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the loop thread to finish."""
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
