"""Compatibility shims: across Python versions, and for names katcp-python carries over."""

from __future__ import annotations

import asyncio
from typing import Any

# On Python 3.10 ``asyncio.TimeoutError`` and the builtin ``TimeoutError`` are different
# classes (they merged in 3.11); a timeout from katcpx must be caught by either spelling.
TIMEOUT_BASES: tuple[type[BaseException], ...] = (
    (TimeoutError,)
    if asyncio.TimeoutError is TimeoutError
    else (asyncio.TimeoutError, TimeoutError)  # pragma: no cover - Python 3.10
)


class WaitTimeout(*TIMEOUT_BASES):  # type: ignore[misc]
    """A wait timed out: both a builtin ``TimeoutError`` and an ``asyncio.TimeoutError``."""


#: The text of the timeout katcp-python's ``until_*`` waits raise (tornado's ``with_timeout``
#: says ``Timeout``); katcpx's say the same, so code matching the text keeps working.
TIMEOUT_TEXT = "Timeout"


async def wait_for(awaitable: Any, timeout: float | None) -> Any:
    """``asyncio.wait_for``, failing like katcp-python's waits: ``WaitTimeout("Timeout")``."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise WaitTimeout(TIMEOUT_TEXT) from None


class Python2Next:
    """Provides ``next()``, which katcp-python's classes inherit from ``future``'s ``newobject``.

    It calls ``__next__`` like Python 2's iterator protocol did; none of these classes is an
    iterator, so it raises ``TypeError`` exactly as katcp-python's does.
    """

    def next(self) -> Any:
        """Python 2 spelling of ``next(obj)``."""
        nxt = getattr(type(self), "__next__", None)
        if nxt is None:
            raise TypeError(f"{type(self).__name__!r} object is not an iterator")
        return nxt(self)
