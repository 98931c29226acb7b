"""Checks katcp-cmd makes before sending, so a mistake is named with its fix, not as the
device's terse refusal (or as an unknown sensor)."""

from __future__ import annotations

import re

from ..flags import ProtocolFlags

__all__ = ["regex_problem", "unknown_strategy"]


def regex_problem(name: str) -> str | None:
    """Say what is wrong with a ``/regex/`` sensor name; None if it is no regex or valid.

    Checked with Python's :mod:`re`; a server may use another dialect (e.g. RE2), but a
    pattern neither accepts is a typo, not an unknown sensor.
    """
    if not (len(name) > 1 and name.startswith("/") and name.endswith("/")):
        return None
    try:
        re.compile(name[1:-1])
    except re.error as exc:
        return f"invalid regular expression {name}: {exc}"
    return None


def unknown_strategy(strategy: list[str], sensor: str, major: int) -> str | None:
    """Say that `strategy` (name and parameters) is not one of KATCP version `major`'s.

    Returns None if it is.

    The strategies of each version are :class:`~katcpx.flags.ProtocolFlags`'s (v5 adds the
    rate strategies). Servers refuse others with katcp-python's terse text; this names them.
    """
    known = ProtocolFlags.STRATEGIES_V4 if major < 5 else ProtocolFlags.STRATEGIES_V5
    if strategy[0] in known:
        return None
    # The same words as katcp-cmd monitor's: the server's refusal, then what exists.
    return (
        f"cannot set strategy {' '.join(strategy)!r} on {sensor}: Unknown strategy name: "
        f"{strategy[0]}. KATCP v{major} strategies are {', '.join(sorted(known))}"
    )
