"""Handing work from other threads to the server's loop, with one wake-up per batch."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["LoopHandoff"]


class LoopHandoff:
    """Runs calls made on other threads on `loop`, in the order they were made.

    ``loop.call_soon_threadsafe`` writes to the loop's self-pipe on every call: a system call
    per reply or sensor update when a handler thread or a hardware thread produces many.
    Here only the first call of a batch wakes the loop; the rest join the queue it drains.

    Parameters
    ----------
    loop
        The loop that runs the calls.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._wakeup_scheduled = False

    def call(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` on the loop soon; calls from one thread keep their order.

        Once the loop is closed (the server has stopped) the call is dropped.
        """
        with self._lock:
            self._calls.append((func, args))
            if self._wakeup_scheduled:
                return
            self._wakeup_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # loop closed: the server is gone
            with self._lock:
                self._calls.clear()
                self._wakeup_scheduled = False

    def _drain(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, deque()
            self._wakeup_scheduled = False
        for func, args in calls:
            try:
                func(*args)
            except Exception as exc:  # one failing call must not lose the rest
                self.loop.call_exception_handler(
                    {"message": f"error in {func!r} handed to the loop", "exception": exc}
                )
