"""katcp-python's ``#sensor-status`` helpers of ``katcp.sampling``, for code that imports them.

A server's own sensor informs come from its sampling manager's formatter
(``katcpx.server.sampling_loop.ReadingFormatter``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .message import Message

__all__ = [
    "AGE_OF_UNIVERSE",
    "format_inform_v4",
    "format_inform_v5",
    "update_in_ioloop",
]

#: Seconds; katcp-python's "never" for event-rate strategies.
AGE_OF_UNIVERSE = 4.32329886e17


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
