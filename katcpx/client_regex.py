"""Regular expressions that clients send, run in linear time with google-re2.

``?sensor-list /re/``, ``?sensor-value /re/`` and the web bridge's sensor filters come from
the network. Python's :mod:`re` backtracks: ``(.*)*(.*)*!`` against a long name takes
seconds, and a server that runs it stalls every client. RE2 guarantees time linear in the
text and refuses the constructs that need backtracking (back-references, look-around), with
an error that names the problem.
"""

from __future__ import annotations

from typing import Protocol

import re2  # type: ignore[import-untyped]

__all__ = ["ClientPattern", "ClientRegexError", "compile_client_regex"]

#: Memory bound for one compiled pattern, in bytes (RE2 refuses bigger ones).
MAX_PATTERN_MEMORY = 8 * 1024 * 1024


class ClientRegexError(ValueError):
    """A client-sent pattern that RE2 cannot compile; the text says why."""


class ClientPattern(Protocol):
    """What a compiled client pattern offers (a subset of :class:`re.Pattern`)."""

    def search(self, text: str) -> object | None: ...


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the caller reports the error to the client
_OPTIONS.max_mem = MAX_PATTERN_MEMORY


def compile_client_regex(pattern: str) -> ClientPattern:
    """Compile `pattern` from a client with RE2 (linear-time matching).

    Raises
    ------
    ClientRegexError
        When the pattern is invalid or needs a feature RE2 does not have.
    """
    try:
        return re2.compile(pattern, _OPTIONS)  # type: ignore[no-any-return,unused-ignore]
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ClientRegexError(str(reason)) from None
    except TypeError as exc:
        raise ClientRegexError(str(exc)) from None
