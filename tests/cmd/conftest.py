"""Fixtures for the katcp-cmd tests (helpers live in ``cmd_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cmd_helpers import Device


@pytest.fixture(scope="module")
def device() -> Iterator[Device]:
    """A device server shared by a module's tests (they must not change its sensors)."""
    dev = Device()
    yield dev
    dev.kill()


@pytest.fixture
def own_device() -> Iterator[Device]:
    """A device server for one test, which may change or restart it."""
    dev = Device()
    yield dev
    dev.kill()
