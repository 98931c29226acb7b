"""``katcp-cmd``: an interactive KATCP shell, one-shot requests, and get/list/monitor tools.

Run ``katcp-cmd --help`` (or ``python -m katcpx.cmd --help``); docs/katcp-cmd.md has the
details.
"""

from .cli import main

__all__ = ["main"]
