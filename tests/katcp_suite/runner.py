"""Build the venv for katcp-python 0.9.3's test modules and run them against katcpx.

katcp-python's tests are ``tornado.testing.AsyncTestCase`` classes, which pytest 8.2 and later
cannot collect, so they run in their own venv under ``<repo>/.peers/katcp-suite`` with
``pytest<8.2`` and the katcpx under test installed editable. The test modules come from the
``katcp==0.9.3`` wheel, downloaded once into that venv and unpacked into a temporary folder
for each run: their code is never part of this repository. ``shim/katcp`` maps ``katcp`` to
``katcpx``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from peers.venv import exclusive_lock, run_checked

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIM_DIR = Path(__file__).resolve().parent / "shim"
EXCEPTIONS_FILE = REPO_ROOT / "tests" / "katcp_suite_exceptions.txt"

#: What the suite venv holds besides the editable katcpx. Changing it rebuilds the venv.
SUITE_REQUIREMENTS: tuple[str, ...] = (
    "pytest>=7.0,<8.2",
    "pytest-timeout>=2.1",
    "mock>=3.0",
    "future>=0.18",
    "ply>=3.11",
)
KATCP_WHEEL_REQUIREMENT = "katcp==0.9.3"
_MARKER_NAME = "katcpx-suite-ready.json"


def suite_venv_dir() -> Path:
    """Return where the suite venv lives: ``<repo>/.peers/katcp-suite``."""
    return REPO_ROOT / ".peers" / "katcp-suite"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _expected_marker() -> dict[str, object]:
    # Rebuilt when the requirements, the interpreter or katcpx's own dependencies change.
    return {
        "requirements": list(SUITE_REQUIREMENTS),
        "base_python": getattr(sys, "_base_executable", None) or sys.executable,
        "pyproject": (REPO_ROOT / "pyproject.toml").read_text(),
    }


def _marker_ok(venv: Path) -> bool:
    try:
        recorded = json.loads((venv / _MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    return recorded == _expected_marker() and _python(venv).exists()


def _build(venv: Path) -> None:
    import shutil

    if venv.exists():
        shutil.rmtree(venv)
    base = getattr(sys, "_base_executable", None) or sys.executable
    run_checked([base, "-m", "venv", str(venv)], "creating the katcp-python suite venv")
    pip = [str(_python(venv)), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run_checked([*pip, "install", "--quiet", *SUITE_REQUIREMENTS], "pip install of the suite venv")
    run_checked([*pip, "install", "--quiet", "-e", str(REPO_ROOT)], "pip install -e katcpx")
    wheels = venv / "wheel"
    run_checked(
        [
            *pip,
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(wheels),
            KATCP_WHEEL_REQUIREMENT,
        ],
        "downloading the katcp 0.9.3 wheel",
    )
    tmp = venv / (_MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(_expected_marker()))
    tmp.replace(venv / _MARKER_NAME)


def ensure_suite_venv() -> Path:
    """Return the suite venv's python, building the venv first if needed (PyPI, once).

    Raises
    ------
    peers.venv.PeerVenvError
        If creating the venv, pip or the wheel download fails.
    """
    venv = suite_venv_dir()
    if not _marker_ok(venv):
        with exclusive_lock(venv.parent / (venv.name + ".lock")):
            if not _marker_ok(venv):
                _build(venv)
    return _python(venv)


def unpack_tests(dest: Path) -> list[str]:
    """Unpack ``katcp/test/test_*.py`` from the cached wheel into ``dest``; return the names."""
    (wheel,) = sorted((suite_venv_dir() / "wheel").glob("katcp-0.9.3-*.whl"))
    names = []
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            folder, _, base = member.rpartition("/")
            if folder == "katcp/test" and base.startswith("test_") and base.endswith(".py"):
                (dest / base).write_bytes(archive.read(member))
                names.append(base)
    return sorted(names)


def read_exceptions(path: Path = EXCEPTIONS_FILE) -> dict[str, str]:
    """Parse the exceptions file: ``<module>::<Class>::<test>  <reason>`` per line.

    Blank lines and ``#`` comments are skipped. Every entry must give a reason.
    """
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        node, _, reason = line.partition(" ")
        if not reason.strip():
            raise ValueError(f"{path.name}:{number}: {node} has no reason")
        entries[node] = reason.strip()
    return entries


@dataclass
class ModuleResult:
    """Outcome counts of one katcp-python test module."""

    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0


def run_suite(
    python: Path, workdir: Path, modules: list[str], timeout: float = 1500.0
) -> tuple[dict[str, ModuleResult], str]:
    """Run ``modules`` (file names in ``workdir``) and return per-module results and output."""
    report = workdir / "report.xml"
    deselect: list[str] = []
    skipped_modules = set()
    for node in read_exceptions():
        if "::" in node:
            deselect.append(node)
        else:  # a whole module (one that cannot even be imported yet)
            skipped_modules.add(node)
    modules = [m for m in modules if m not in skipped_modules]
    deselect_file = workdir / "deselect.json"
    deselect_file.write_text(json.dumps(deselect))
    env = dict(
        os.environ,
        # The shim, and this folder for the exact-deselect plugin.
        PYTHONPATH=os.pathsep.join([str(SHIM_DIR), str(Path(__file__).resolve().parent)]),
        PYTHONDONTWRITEBYTECODE="1",
        KATCPX_DESELECT=str(deselect_file),
    )
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(workdir),
            "--timeout",
            "60",
            # Native tracebacks: pytest's own rendering can crash the run after a deep
            # recursion in a test ("AST constructor recursion depth mismatch").
            "--tb=native",
            # A module that cannot even be imported fails alone, not the whole run.
            "--continue-on-collection-errors",
            "-W",
            "ignore::DeprecationWarning",
            f"--junitxml={report}",
            "-p",
            "deselect_plugin",
            *modules,
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    results: dict[str, ModuleResult] = {name: ModuleResult() for name in modules}
    if report.exists():
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            classname = case.get("classname", "")
            if classname:
                module = classname.split(".")[0] + ".py"
                node = f"{module}::{classname.partition('.')[2]}::{case.get('name')}"
            else:  # a collection error: the whole module
                module = f"{case.get('name', '').rpartition('.')[2]}.py"
                node = module
            result = results.setdefault(module, ModuleResult())
            if case.find("failure") is not None or case.find("error") is not None:
                result.failed.append(node)
            elif case.find("skipped") is not None:
                result.skipped += 1
            else:
                result.passed += 1
    return results, proc.stdout
