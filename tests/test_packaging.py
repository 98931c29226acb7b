"""The package list in pyproject.toml names every package in the source tree."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

import katcpx

ROOT = Path(__file__).resolve().parents[1]


def _packages_on_disk(top: Path, name: str) -> set[str]:
    found = set()
    for init in top.rglob("__init__.py"):
        rel = init.parent.relative_to(top)
        if "__pycache__" in rel.parts:
            continue
        found.add(".".join([name, *rel.parts]))
    return found


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = _packages_on_disk(ROOT / "katcpx", "katcpx") | _packages_on_disk(
        ROOT / "devices", "katcpx_devices"
    )
    assert on_disk == listed
    assert config["package-dir"] == {"katcpx_devices": "devices"}


def test_version_information():
    assert len(katcpx.VERSION) == 5
    assert katcpx.VERSION_STR == ".".join(str(p) for p in katcpx.VERSION[:3])
    assert katcpx.__version__ == katcpx.VERSION_STR
    assert (ROOT / "katcpx" / "py.typed").exists()
