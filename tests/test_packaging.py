"""The package list in pyproject.toml names every package in the source tree, and a wheel
holds what an installed katcpx needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
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


def test_the_wheel_holds_the_built_speedups_and_their_types(tmp_path):
    # What `pip install katcpx` from a source checkout installs: the codec's C speedups
    # compiled, their types for mypy, and the typing marker.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("katcpx-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "katcpx/py.typed" in names
    assert "katcpx/codec/_speedups.pyi" in names
    assert [n for n in names if n.startswith("katcpx/codec/_speedups.") and "cpython" in n]
