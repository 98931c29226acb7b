"""katcp-python's ``#sensor-status`` helpers of ``katcp.sampling``, for code that imports them."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from .message import Message

__all__ = ["AGE_OF_UNIVERSE", "format_inform_v4", "format_inform_v5", "update_in_ioloop"]

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
    """Decorate a strategy's ``update(sensor, reading)`` to run on ``self.ioloop``'s thread.

    Called from another thread than ``self._ioloop_thread_id``, it is handed to the loop.
    """

    @functools.wraps(update)
    def wrapped(self: Any, sensor: Any, reading: Any) -> None:
        if threading.get_ident() == getattr(self, "_ioloop_thread_id", None):
            update(self, sensor, reading)
        else:
            self.ioloop.add_callback(update, self, sensor, reading)

    return wrapped
