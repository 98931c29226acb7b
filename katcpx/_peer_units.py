"""Time units on the wire: seconds from KATCP v5, milliseconds before (no I/O).

Every time quantity sent to or read from a peer goes through here, and the peer's major
version decides the unit (spec rev 5.1 section 1.1 and section 7.1, table 9):

- timestamps in informs (``#sensor-status``, ``#sensor-value``, ``#log``, ``#op-message``);
- sampling strategy parameters: the ``period`` of ``period``, the shortest and longest
  periods of ``event-rate`` and ``differential-rate``, and the difference of
  ``differential`` and ``differential-rate`` on a ``timestamp`` sensor.

Callers always work in seconds; only the wire text changes with the version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .codec import format_timestamp, parse_timestamp, show_argument
from .flags import SEC_TS_KATCP_MAJOR

__all__ = [
    "seconds_to_wire",
    "seconds_from_wire",
    "sensor_value_in_seconds",
    "strategy_time_params",
    "strategy_params_to_wire",
]

# Strategy -> indexes of its parameters that are always time quantities.
_TIME_PARAMS: dict[str, tuple[int, ...]] = {
    "period": (0,),
    "event-rate": (0, 1),
    "differential-rate": (1, 2),
}
# Strategies whose difference (parameter 0) is a time quantity on a timestamp sensor.
_DIFFERENCE_STRATEGIES = ("differential", "differential-rate")


def seconds_to_wire(seconds: float, major: int) -> bytes:
    """Format a time in seconds for a peer speaking KATCP `major`.

    Parameters
    ----------
    seconds : float
        The time (a timestamp or a duration) in seconds.
    major : int
        The peer's KATCP major version: seconds from 5, milliseconds before.

    Returns
    -------
    bytes
        Exact positional decimal (``1000`` for one second to a v4 peer).

    Raises
    ------
    ValueError
        If `seconds` is not finite.
    """
    return format_timestamp(seconds, major)


def seconds_from_wire(raw: bytes, major: int) -> float:
    """Parse a time sent by a peer speaking KATCP `major` into seconds.

    Raises
    ------
    ValueError
        If `raw` is not a finite decimal number.
    """
    return parse_timestamp(raw, major)


def sensor_value_in_seconds(raw: bytes, sensor_type: str | None, major: int) -> bytes:
    """The formatted value of a sensor, with a ``timestamp`` sensor's value in seconds.

    A v4 peer formats timestamp sensor values in milliseconds, as it does reading timestamps
    (spec rev 5.1 section 1.1); the result is then the same time in seconds, as a v5 peer
    would send it. Other values, and values from v5 peers, are returned unchanged.

    Parameters
    ----------
    raw : bytes
        The value as sent (``#sensor-value`` / ``#sensor-status``).
    sensor_type : str or None
        The sensor's KATCP type (``"timestamp"``...), when known.
    major : int
        The peer's KATCP major version.

    Raises
    ------
    ValueError
        If a v4 timestamp value is not a finite decimal number.
    """
    if sensor_type != "timestamp" or major >= SEC_TS_KATCP_MAJOR:
        return raw
    return seconds_to_wire(seconds_from_wire(raw, major), SEC_TS_KATCP_MAJOR)


def strategy_time_params(strategy: str, sensor_type: str | None = None) -> tuple[int, ...]:
    """Indexes of the parameters of `strategy` that are time quantities.

    Parameters
    ----------
    strategy : str
        Strategy name, e.g. ``"period"``.
    sensor_type : str, optional
        The sensor's type (``"timestamp"`` makes a differential's difference a time).
    """
    indexes = _TIME_PARAMS.get(strategy, ())
    if sensor_type == "timestamp" and strategy in _DIFFERENCE_STRATEGIES:
        indexes = (0, *indexes)
    return indexes


def strategy_params_to_wire(
    strategy: str | bytes,
    params: Sequence[Any],
    major: int,
    sensor_type: str | None = None,
) -> list[str]:
    """The ``?sensor-sampling`` parameters for a peer, from parameters given in seconds.

    Parameters
    ----------
    strategy : str or bytes
        Strategy name (``period``, ``event-rate``, ...).
    params : sequence
        The strategy's parameters; time quantities in seconds (numbers or their text).
    major : int
        The peer's KATCP major version (v4 reads milliseconds).
    sensor_type : str, optional
        The sensor's KATCP type, when known.

    Returns
    -------
    list of str
        Parameters as text, times converted for `major`; other parameters unchanged.

    Raises
    ------
    ValueError
        If a time parameter is not a finite number.
    """
    name = strategy.decode("ascii", "replace") if isinstance(strategy, bytes) else str(strategy)
    out = [p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in params]
    if major >= SEC_TS_KATCP_MAJOR:
        return out
    for index in strategy_time_params(name, sensor_type):
        if index < len(out):
            try:
                seconds = float(out[index])
            except ValueError:
                raise ValueError(
                    f"{name} parameter {index + 1} must be a number of seconds, "
                    f"not {show_argument(out[index])}"
                ) from None
            out[index] = seconds_to_wire(seconds, major).decode("ascii")
    return out
