"""Fixtures of the first-hour tests: the simulated site in a child process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_process import Sim


@pytest.fixture(scope="module")
def site() -> Iterator[Sim]:
    """``katcpx-sim site`` in real time, on free ports (tests must not move the antenna)."""
    sim = Sim("site", "--seed", "1", "--channels", "16")
    yield sim
    sim.stop()


@pytest.fixture
def antenna() -> Iterator[Sim]:
    """A simulated antenna in real time, for one test, which may move it."""
    sim = Sim("antenna", "--seed", "1")
    yield sim
    sim.stop()
