"""Sensor readings as ``#sensor-status`` and ``#sensor-value`` informs (no I/O).

:class:`ReadingFormatter` is the one formatter of a server's sensor informs: it formats each
reading once, keeps it in one cache, and serves both ``#sensor-status`` (sampling) and
``#sensor-value`` (``?sensor-value``) from it. The rest are katcp-python's helpers of
``katcp.sampling``, for code that imports them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .codec import wire_argument
from .message import Message

if TYPE_CHECKING:
    from .sensor import Reading, Sensor

__all__ = [
    "AGE_OF_UNIVERSE",
    "ReadingFormatter",
    "format_inform_v4",
    "format_inform_v5",
    "update_in_ioloop",
]

#: Seconds; katcp-python's "never" for event-rate strategies.
AGE_OF_UNIVERSE = 4.32329886e17


class ReadingFormatter:
    """Formats sensor readings for one protocol version, each reading once.

    Parameters
    ----------
    major : int
        KATCP major version of the informs (timestamps in ms and v4 statuses before 5).

    Notes
    -----
    The cache holds one entry per sensor: its last formatted reading, keyed by the
    reading's identity (readings are immutable tuples, and a sensor stores a new one on
    every set). It is bounded by the number of sensors; :meth:`forget` drops a removed one.
    Use it from one thread (the server's loop).
    """

    __slots__ = ("major", "_cache")

    def __init__(self, major: int = 5) -> None:
        self.major = major
        # sensor -> (reading, its escaped "ts 1 name status value" tail)
        self._cache: dict[Sensor, tuple[Reading, bytes]] = {}

    def _tail(self, sensor: Sensor, reading: Reading) -> bytes:
        cached = self._cache.get(sensor)
        if cached is not None and cached[0] is reading:
            return cached[1]
        timestamp, status, value = sensor.format_reading(reading, self.major)
        name = wire_argument(sensor.name.encode("utf-8"))
        tail = b"%s 1 %s %s %s" % (timestamp, name, status, wire_argument(value))
        self._cache[sensor] = (reading, tail)
        return tail

    def status_line(self, sensor: Sensor, reading: Reading) -> bytes:
        """The ``#sensor-status`` wire line (with its ``\\n``) of `reading` of `sensor`."""
        return b"#sensor-status %s\n" % self._tail(sensor, reading)

    def value_line(self, sensor: Sensor, mid: bytes | None = None) -> bytes:
        """The ``#sensor-value`` wire line (without ``\\n``) of `sensor`'s current reading.

        Parameters
        ----------
        mid : bytes, optional
            The message id of the ``?sensor-value`` request it answers.
        """
        tail = self._tail(sensor, sensor.read())
        if mid is None:
            return b"#sensor-value %s" % tail
        return b"#sensor-value[%s] %s" % (mid, tail)

    def forget(self, sensor: Sensor) -> None:
        """Drop `sensor`'s entry (it was removed from the server)."""
        self._cache.pop(sensor, None)


def _format_inform(sensor: Any, reading: Any, major: int) -> Message:
    timestamp, status, value = sensor.format_reading(reading, major)
    return Message.inform("sensor-status", timestamp, "1", sensor.name, status, value)


def format_inform_v4(sensor: Any, *reading: Any) -> Message:
    """The KATCP v4 ``#sensor-status`` for ``(timestamp, status, value)`` (ms timestamps)."""
    return _format_inform(sensor, reading, 4)


def format_inform_v5(sensor: Any, *reading: Any) -> Message:
    """The KATCP v5 ``#sensor-status`` for ``(timestamp, status, value)``."""
    return _format_inform(sensor, reading, 5)


def update_in_ioloop(update: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a strategy's ``update(sensor, reading)`` to run on its loop's thread.

    katcp-python's decorator. The strategy's ``loop_binding`` (a
    :class:`katcpx.crossing.LoopBinding`, None for a strategy not bound to a loop) decides:
    on the loop's thread, or without a loop, the update runs at once; from another thread
    it is handed to the loop.
    """

    @functools.wraps(update)
    def wrapped(self: Any, sensor: Any, reading: Any) -> None:
        binding = getattr(self, "loop_binding", None)
        if binding is None or not binding.bound:
            update(self, sensor, reading)
        else:
            binding.call_here_or_soon(update, self, sensor, reading)

    return wrapped
