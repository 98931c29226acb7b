"""What a server logs about one client's bad input, with a per-connection rate limit.

Each malformed line, unknown request, unexpected reply or failed request used to give one
server log record. A client flooding bad lines (500,000 ``?watchdog[0]``) then wrote as many
records, tens of MB, and could fill the disk. :class:`InputLog` writes the first
:attr:`InputLog.BURST` records of each :attr:`InputLog.WINDOW` seconds in full; past that it
counts them, and writes one summary record per window naming the client and how many
records were left out (at the end of the window, and when the client disconnects). The
client itself still gets every reply and ``#log`` (those are flow-controlled with its
requests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["InputLog", "input_log"]

#: Arranges for ``func()`` to run on the server's loop after ``delay`` seconds (any thread).
Scheduler = Callable[[float, Callable[[], None]], None]


class InputLog:
    """Rate-limited log records about one client's bad input (thread-safe).

    Parameters
    ----------
    logger
        The server's logger.
    peer
        Names the client in the summary records (``host:port``); called when writing one.
    schedule
        Runs the end-of-window summary later on the server's loop; None writes it only
        with the next record or at :meth:`close`.
    """

    #: Records written in full per window, per connection.
    BURST: ClassVar[int] = 20
    #: Seconds per window.
    WINDOW: ClassVar[float] = 10.0

    def __init__(
        self,
        logger: logging.Logger,
        peer: Callable[[], str],
        schedule: Scheduler | None = None,
    ) -> None:
        self._logger = logger
        self._peer = peer
        self._schedule = schedule
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._written = 0
        self._left_out = 0
        self._left_out_total = 0
        self._timer_armed = False

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log like ``logger.log(level, msg, *args)`` unless this window's burst is used up."""
        now = time.monotonic()
        summary = None
        arm = False
        with self._lock:
            if now - self._window_start >= self.WINDOW:
                summary = self._end_window()
                self._window_start = now
            if self._written < self.BURST:
                self._written += 1
                write = True
            else:
                write = False
                self._left_out += 1
                self._left_out_total += 1
                arm = not self._timer_armed and self._schedule is not None
                self._timer_armed = self._timer_armed or arm
        if summary is not None:
            self._write_summary(*summary)
        if write:
            self._logger.log(level, msg, *args, **kwargs)
        elif arm:
            assert self._schedule is not None
            left = max(0.0, self._window_start + self.WINDOW - now)
            self._schedule(left, self._timer_fired)

    def error(self, msg: str, *args: Any) -> None:
        """:meth:`log` at ERROR level."""
        self.log(logging.ERROR, msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        """:meth:`log` at WARNING level."""
        self.log(logging.WARNING, msg, *args)

    @property
    def left_out(self) -> int:
        """Records left out since the client connected."""
        return self._left_out_total

    def close(self) -> None:
        """The client disconnected: write the summary of records still left out."""
        with self._lock:
            summary = self._end_window()
        if summary is not None:
            self._write_summary(*summary)

    def _timer_fired(self) -> None:
        with self._lock:
            self._timer_armed = False
            if time.monotonic() - self._window_start < self.WINDOW:
                return  # a new window began meanwhile; its own timer reports it
            summary = self._end_window()
            self._window_start = 0.0  # the next record begins a fresh window
        if summary is not None:
            self._write_summary(*summary)

    def _end_window(self) -> tuple[int, int] | None:
        left_out = self._left_out
        self._written = 0
        self._left_out = 0
        return (left_out, self._left_out_total) if left_out else None

    def _write_summary(self, left_out: int, total: int) -> None:
        self._logger.warning(
            "bad input from %s: %d more log records about it left out (at most %d per %g s; "
            "%d left out since it connected)",
            self._peer(),
            left_out,
            self.BURST,
            self.WINDOW,
            total,
        )


def input_log(conn: object, logger: logging.Logger) -> InputLog | logging.Logger:
    """Where to log about `conn`'s bad input: its :class:`InputLog`, else `logger`.

    Stand-in connections (katcp-python-style tests) have no :class:`InputLog`.
    """
    limiter = getattr(conn, "input_log", None)
    return limiter if isinstance(limiter, InputLog) else logger
