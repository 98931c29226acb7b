"""Hints katcp-cmd adds to the device's refusals, so a mistake is named with its fix.

The device's own words always come first: a hint is added after them, never instead.
"""

from __future__ import annotations

import re

from .._peer_units import strategy_params_to_wire
from ..flags import ProtocolFlags

__all__ = ["regex_hint", "sampling_params", "strategy_hint"]


def regex_hint(name: str) -> str:
    """A hint saying what is wrong with a ``/regex/`` sensor name, to add after the
    device's answer; empty if `name` is no regex, or a valid one.

    Checked with Python's :mod:`re`; a server may use another dialect (e.g. RE2), so the
    pattern is still sent and the device's answer comes first.
    """
    if not (len(name) > 1 and name.startswith("/") and name.endswith("/")):
        return ""
    try:
        re.compile(name[1:-1])
    except re.error as exc:
        return f" (Python's re: invalid regular expression {name}: {exc})"
    return ""


def sampling_params(
    strategy: list[str], major: int, sensor_type: str | None = None
) -> tuple[list[str], str | None]:
    """The ``?sensor-sampling`` parameters to send for `strategy` (name and parameters,
    times in seconds), and what is wrong with them, if katcp-cmd can tell.

    Parameters that cannot be converted for a v4 server (which reads milliseconds) are sent
    as typed, so that the server's refusal is what the user reads; the problem is returned
    to add to it as a hint.
    """
    try:
        return strategy_params_to_wire(strategy[0], strategy[1:], major, sensor_type), None
    except ValueError as exc:
        return list(strategy[1:]), str(exc)


def strategy_hint(strategy: list[str], major: int, problem: str | None = None) -> str:
    """A hint to add after the server's refusal of `strategy` (empty when there is none).

    The strategies of each version are :class:`~katcpx.flags.ProtocolFlags`'s (v5 adds the
    rate strategies); `problem` is what :func:`sampling_params` found.
    """
    hints = [problem] if problem else []
    known = ProtocolFlags.STRATEGIES_V4 if major < 5 else ProtocolFlags.STRATEGIES_V5
    if strategy[0] not in known:
        hints.append(f"KATCP v{major} strategies are {', '.join(sorted(known))}")
    return f" ({'; '.join(hints)})" if hints else ""
