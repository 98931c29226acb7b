"""Run one snippet under katcp-python 0.9.3 and under katcpx, and compare what it prints.

The snippet uses the name ``katcp``; under katcpx it runs after ``import katcpx as katcp``
(the drop-in way), with ``from katcp.x import`` lines changed to ``from katcpx.x import``. Each printed line is one value; the test compares them line by line.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_PRELUDE = {
    "katcp": "import katcp\n",
    "katcpx": "import katcpx as katcp\n",
}


#: Prepend to a snippet that needs katcp-python's testutils or resource waits: they import
#: the external ``mock`` package (unittest.mock since) and the collections ABC names that
#: Python 3.10 moved to ``collections.abc``.
OLD_PYTHON_SHIM = """\
import collections, collections.abc, sys, unittest.mock
sys.modules.setdefault("mock", unittest.mock)
for _name in ("MutableMapping", "Mapping", "Sequence", "MutableSet", "Callable", "Iterable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
"""


def device_class(name: str, base: str = "DeviceServer") -> str:
    """Snippet text defining `name`, a device of katcp's `base` with no sensors of its own."""
    return (
        f"class {name}(katcp.{base}):\n"
        '    VERSION_INFO = ("s", 1, 0)\n'
        '    BUILD_INFO = ("s", 1, 0, "")\n'
        "    def setup_sensors(self):\n"
        "        pass\n"
    )


def run_snippet(python: Path | str, library: str, code: str, timeout: float = 120) -> list[str]:
    """Run `code` with `library` imported as ``katcp`` in `python`; return stdout lines."""
    code = textwrap.dedent(code)
    if library == "katcpx":  # what a user changes when moving: the imports, nothing else
        code = code.replace("from katcp.", "from katcpx.").replace(
            "from katcp import", "from katcpx import"
        )
    source = _PRELUDE[library] + code
    done = subprocess.run(
        [str(python), "-c", source], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{library} snippet failed:\n{done.stderr}"
    return done.stdout.splitlines()


def both(katcp_python: Path, code: str) -> tuple[list[str], list[str]]:
    """Return the lines `code` prints under katcp-python 0.9.3 and under katcpx."""
    return run_snippet(katcp_python, "katcp", code), run_snippet(sys.executable, "katcpx", code)


def assert_same(katcp_python: Path, code: str) -> list[str]:
    """Assert `code` prints the same lines under both libraries; return katcpx's lines."""
    theirs, ours = both(katcp_python, code)
    assert ours == theirs
    return ours
