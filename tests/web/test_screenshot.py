"""Kind 6: the dashboard screenshot in the docs is made by a script, which works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from . import browser

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))


def test_docs_screenshot_made_by_script(tmp_path: Path) -> None:
    out = tmp_path / "dashboard.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "make_screenshot.py"), str(out), "--settle", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in result.stdout
