"""``katcp-cmd``: an interactive KATCP shell, one-shot requests, and get/list/monitor tools.

Run ``katcp-cmd --help`` (or ``python -m katcpx.cmd --help``); docs/katcp-cmd.md has the
details. The implementation modules are private; :func:`main` is the console entry point,
:class:`CmdClient` the client the tools use and :class:`CmdError` what they raise for people.
"""

from ._cli import main
from ._connection import CmdClient, CmdError

__all__ = ["CmdClient", "CmdError", "main"]
