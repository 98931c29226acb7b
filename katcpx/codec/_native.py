"""The codec's optional C speedups: one-pass escaping and splitting (``_speedups.c``).

Both are fast paths that return None when not certain, and the pure-Python codec then
decides, so every result and error text is the same with or without them. They are built
at install time when a C compiler is found; set ``KATCPX_PURE_PYTHON=1`` to run without
them (the tests do, to check that the two agree).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

__all__ = ["SPEEDUPS", "fast_format_line", "fast_split_line"]

#: ``fast_format_line(head, arguments)``: ``head`` (``?name[mid]``, bytes) plus the escaped
#: arguments (a list of bytes), space-separated, plus ``\n``; None when an argument is not
#: bytes. None itself when the speedups are not built.
fast_format_line: Callable[[bytes, list[bytes]], bytes | None] | None = None
#: ``fast_split_line(line)``: ``[head, argument, ...]`` of a line without its end-of-line,
#: the head raw and the arguments unescaped; None when the line needs the careful parser
#: (empty, leading white space, raw NUL/ESC/CR/LF, odd bytes in the head, a bad escape).
#: None itself when the speedups are not built.
fast_split_line: Callable[[bytes], list[bytes] | None] | None = None

if not os.environ.get("KATCPX_PURE_PYTHON"):
    try:
        from ._speedups import format_line, split_line
    except ImportError:  # not built: no C compiler at install time
        pass
    else:
        fast_format_line = format_line
        fast_split_line = split_line

#: True when the C speedups are in use.
SPEEDUPS: Final = fast_format_line is not None
