"""Shared fixtures for the katcpx tests: peer implementations to test against.

Peer helpers are imported as ``from peers import ...`` (``tests/peers``); see that package's
docstring for the full API.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest's default import mode puts this directory on sys.path; importlib mode does not, and the
# tests (and bench/) import the helpers as the top-level package ``peers``.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from peers import (  # noqa: E402
    AiokatcpServerThread,
    KatcpPythonServer,
    PeerAddress,
    PeerVenvError,
    ensure_katcp_python_venv,
)
from peers.venv import katcp_python_venv_ready  # noqa: E402

_venv_error: PeerVenvError | None = None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the katcp-python venv before the first test that needs it starts.

    Building (a pip install, half a minute on a cold cache) here keeps it out of any single
    test's timeout. A failure is kept and raised by the ``katcp_python`` fixture, so every test
    that needs the venv fails with pip's output.
    """
    global _venv_error
    if session.config.option.collectonly:
        return
    # Tests that ask for the fixture dynamically (request.getfixturevalue) should carry the
    # ``peers`` marker to be covered here; otherwise the fixture builds the venv itself.
    if not any(
        "katcp_python" in getattr(item, "fixturenames", ()) or item.get_closest_marker("peers")
        for item in session.items
    ):
        return
    if not katcp_python_venv_ready():
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("building the katcp-python 0.9.3 venv in .peers/ (first run only)")
    try:
        ensure_katcp_python_venv()
    except PeerVenvError as exc:
        _venv_error = exc


@pytest.fixture(scope="session")
def katcp_python() -> Path:
    """Python executable of the katcp-python 0.9.3 venv (built on first use, then cached).

    Fails loudly, rather than skipping, when the venv cannot be built.
    """
    if _venv_error is not None:
        raise _venv_error
    return ensure_katcp_python_venv()


@pytest.fixture
def katcp_python_server(katcp_python: Path) -> Iterator[KatcpPythonServer]:
    """A running katcp-python 0.9.3 DeviceServer peer with the default catalogue (5.0-IM)."""
    with KatcpPythonServer(katcp_python) as server:
        yield server


@pytest.fixture
def aiokatcp_server() -> Iterator[PeerAddress]:
    """``(host, port)`` of a running aiokatcp DeviceServer peer with the default catalogue.

    Use :class:`peers.AiokatcpServerThread` directly to set sensors or change the catalogue.
    """
    with AiokatcpServerThread() as server:
        yield server.address
