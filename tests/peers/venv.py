"""Build (once) the virtual environment that runs katcp-python 0.9.3.

katcp-python 0.9.3 needs tornado < 5 while katcpx needs tornado 6, so the reference
implementation lives in its own venv under ``<repo>/.peers/katcp093`` and is only ever run as a
subprocess. The venv is created with the running interpreter (``sys.executable -m venv``).

Building is idempotent and safe across processes: an exclusive file lock serialises builders
and a marker file, written last, records a finished build so later calls return at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "KATCP_PYTHON_REQUIREMENTS",
    "PeerVenvError",
    "ensure_katcp_python_venv",
    "exclusive_lock",
    "run_checked",
    "katcp_python_venv_dir",
    "katcp_python_venv_ready",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

#: What the peer venv holds. Changing this list invalidates existing venvs (see the marker).
KATCP_PYTHON_REQUIREMENTS: tuple[str, ...] = ("katcp==0.9.3", "tornado>=4.3,<5")

#: Point this at an existing python that already has katcp 0.9.3 to skip the build.
PYTHON_OVERRIDE_ENV = "KATCPX_KATCP_PYTHON"

_MARKER_NAME = "katcpx-peer-ready.json"
_PIP_TIMEOUT = 900.0


class PeerVenvError(RuntimeError):
    """The katcp-python venv could not be built or does not work."""


def katcp_python_venv_dir() -> Path:
    """Return where the katcp-python 0.9.3 venv lives (it may not exist yet).

    Returns
    -------
    Path
        ``<repo>/.peers/katcp093``.
    """
    return REPO_ROOT / ".peers" / "katcp093"


def _venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


#: Newest Python that katcp-python 0.9.3 (with tornado 4.5) installs and runs on.
_NEWEST_PEER_PYTHON = (3, 11)


def _base_python() -> str:
    """The interpreter to build the peer venv from.

    The running one when katcp-python 0.9.3 works on it; under a newer Python (the test suite
    also runs on 3.12 and 3.13), the newest ``python3.11`` ... ``python3.8`` on ``PATH``.
    """
    if sys.version_info[:2] <= _NEWEST_PEER_PYTHON:
        # The base interpreter, not a venv's: test runs from different venvs share one build.
        return getattr(sys, "_base_executable", None) or sys.executable
    for minor in range(_NEWEST_PEER_PYTHON[1], 7, -1):
        found = shutil.which(f"python3.{minor}")
        if found:
            return found
    return sys.executable  # the build then fails with pip's own explanation


def _expected_marker() -> dict[str, object]:
    # The venv is tied to the interpreter that made it: a different base Python needs a rebuild.
    return {
        "requirements": list(KATCP_PYTHON_REQUIREMENTS),
        "base_python": _base_python(),
    }


def _marker_ok(venv: Path) -> bool:
    try:
        recorded = json.loads((venv / _MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    return recorded == _expected_marker() and _venv_python(venv).exists()


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (blocking) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if sys.platform == "win32":  # pragma: no cover - CI runs on Linux
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after ~10 s; keep waiting
                    continue
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _run(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_PIP_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerVenvError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        raise PeerVenvError(
            f"{what} failed with exit code {proc.returncode}\n"
            f"command: {' '.join(cmd)}\n--- output ---\n{proc.stdout}"
        )
    return proc.stdout


def _build(venv: Path) -> None:
    if venv.exists():
        # A venv without a valid marker is a half-finished or stale build: start afresh.
        shutil.rmtree(venv)
    _run([_base_python(), "-m", "venv", str(venv)], "creating the katcp-python venv")
    python = str(_venv_python(venv))
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            *KATCP_PYTHON_REQUIREMENTS,
        ],
        "pip install of " + " ".join(KATCP_PYTHON_REQUIREMENTS),
    )
    probe = _run(
        [python, "-c", "import katcp, tornado; print(katcp.__version__, tornado.version)"],
        "importing katcp in the peer venv",
    )
    katcp_version, _, tornado_version = probe.strip().partition(" ")
    if katcp_version != "0.9.3" or not tornado_version.startswith("4."):
        raise PeerVenvError(
            f"peer venv has katcp {katcp_version} / tornado {tornado_version}, "
            "expected katcp 0.9.3 on tornado 4.x"
        )
    tmp = venv / (_MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(_expected_marker()))
    tmp.replace(venv / _MARKER_NAME)


def katcp_python_venv_ready() -> bool:
    """Return whether :func:`ensure_katcp_python_venv` would return without building.

    Returns
    -------
    bool
        True if the venv is built and current, or ``KATCPX_KATCP_PYTHON`` is set.
    """
    return bool(os.environ.get(PYTHON_OVERRIDE_ENV)) or _marker_ok(katcp_python_venv_dir())


def ensure_katcp_python_venv() -> Path:
    """Return a python executable that can ``import katcp`` (0.9.3), building it if needed.

    The first call creates ``<repo>/.peers/katcp093`` and pip-installs
    :data:`KATCP_PYTHON_REQUIREMENTS` into it (this needs network access to PyPI and takes
    some seconds); later calls, from any process, find the marker and return immediately.
    Setting the environment variable ``KATCPX_KATCP_PYTHON`` to a python executable skips
    the build and uses that interpreter instead.

    Returns
    -------
    Path
        The venv's python executable.

    Raises
    ------
    PeerVenvError
        If the venv cannot be created, pip fails, or the installed versions are wrong. This is
        deliberately an error rather than a skip: the interoperability tests must run in CI.
    """
    override = os.environ.get(PYTHON_OVERRIDE_ENV)
    if override:
        python = Path(override)
        if not python.exists():
            raise PeerVenvError(f"{PYTHON_OVERRIDE_ENV}={override} does not exist")
        return python
    venv = katcp_python_venv_dir()
    if _marker_ok(venv):
        return _venv_python(venv)
    with _exclusive_lock(venv.parent / (venv.name + ".lock")):
        # Another process may have finished the build while this one waited for the lock.
        if not _marker_ok(venv):
            _build(venv)
    return _venv_python(venv)


#: Public names for the other venv builders of the test suite (tests/katcp_suite).
exclusive_lock = _exclusive_lock
run_checked = _run


if __name__ == "__main__":
    print(ensure_katcp_python_venv())
