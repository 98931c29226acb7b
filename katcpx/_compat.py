"""Names katcp-python's API carries over from Python 2, kept so ported code still runs."""

from __future__ import annotations

from typing import Any


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
