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

#: Memory bound for one compiled pattern and its match cache, in bytes (RE2 refuses
#: patterns that need more, and falls back from its DFA when the cache fills).
MAX_PATTERN_MEMORY = 1024 * 1024
#: Largest compiled program (RE2 instructions) accepted. Counted repetition multiplies the
#: program (``(.*){1000}`` has about 9000 instructions); the work per name grows with it.
MAX_PROGRAM_SIZE = 2000


class ClientRegexError(ValueError):
    """A client-sent pattern that RE2 cannot compile; the text says why."""


class ClientPattern(Protocol):
    """What a compiled client pattern offers (a subset of :class:`re.Pattern`)."""

    def search(self, text: str) -> object | None: ...


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the caller reports the error to the client
_OPTIONS.max_mem = MAX_PATTERN_MEMORY
# Only "does it match" is asked. Without capture groups RE2 runs its DFA; with them it runs
# the NFA, whose cost is program size times name length (seconds for nested repetition).
_OPTIONS.never_capture = True


def compile_client_regex(pattern: str) -> ClientPattern:
    """Compile `pattern` from a client with RE2 (linear-time matching).

    Raises
    ------
    ClientRegexError
        When the pattern is invalid, needs a feature RE2 does not have, or compiles to more
        than :data:`MAX_PROGRAM_SIZE` instructions.
    """
    try:
        compiled = re2.compile(pattern, _OPTIONS)
        size = int(compiled.programsize)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ClientRegexError(str(reason)) from None
    except TypeError as exc:
        raise ClientRegexError(str(exc)) from None
    if size > MAX_PROGRAM_SIZE:
        raise ClientRegexError(
            f"pattern too complex: it compiles to {size} instructions, the limit is "
            f"{MAX_PROGRAM_SIZE} (nested or large counted repetition such as {{1000}})"
        )
    return compiled  # type: ignore[no-any-return,unused-ignore]
