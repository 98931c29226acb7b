"""The README's examples run as written: tests/docs runs every block of README.md as its own
process (see docs/design.md, Conventions); this checks none of its Python examples is left out.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "docs"))

from docs_runner import ROOT, parse_page


def test_readme_python_examples_all_run() -> None:
    blocks = [b for b in parse_page(ROOT / "README.md") if b.info == "python"]
    assert len(blocks) >= 5
    assert all(b.kind in ("script", "doctest") for b in blocks), [
        (b.ident, b.kind, b.reason) for b in blocks
    ]
    (heater,) = [b for b in blocks if "class Heater" in b.text]
    assert heater.background  # a server: started as its own process, for the client example
