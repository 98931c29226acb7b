"""Command-line tools exit quietly when their standard output is closed.

``katcpx-sim ... | head -3`` closes the pipe after three lines; the next ``print`` then raises
`BrokenPipeError`. The reader is gone, so there is nobody to tell: exit without a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")

#: Exit status after the reader of standard output went away (as Python's docs suggest).
EXIT_CLOSED_STDOUT = 1


def quiet_on_closed_stdout(main: Callable[P, int]) -> Callable[P, int]:
    """Wrap a tool's ``main`` so a closed standard output ends it quietly.

    Parameters
    ----------
    main
        The tool's entry point, returning an exit status.

    Returns
    -------
    The wrapped entry point; it returns `EXIT_CLOSED_STDOUT` on `BrokenPipeError`.
    """

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except BrokenPipeError:
            # Point stdout at /dev/null, so the flush at interpreter exit does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError):  # stdout is no real file (replaced or closed)
                sys.stdout = open(os.devnull, "w")
            finally:
                os.close(devnull)
            return EXIT_CLOSED_STDOUT

    return wrapper
