"""Every class and method that katcp-python's documented Core API lists exists in katcpx.

The reference is ``../shared/seeds/003_*.txt`` (the project's copy of katcp-python's API
docs). Its method tables name methods as ``ClassName.method(...)``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import katcpx

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SEED = next(iter(sorted(SEEDS.glob("003_*.txt"))), None) if SEEDS.is_dir() else None


def _documented_methods() -> dict[str, set[str]]:
    assert SEED is not None
    listed: dict[str, set[str]] = {}
    for cls, method in re.findall(r"^(\w+)\.(\w+)\(", SEED.read_text(), re.MULTILINE):
        listed.setdefault(cls, set()).add(method)
    return listed


@pytest.mark.skipif(SEED is None, reason="the shared/ reference material is not beside the repo")
def test_every_documented_method_exists():
    listed = _documented_methods()
    assert len(listed) >= 14  # clients, servers, logger, sensor, resources, message, parser...
    missing = {
        cls: sorted(m for m in methods if not hasattr(getattr(katcpx, cls), m))
        for cls, methods in listed.items()
    }
    assert {cls: m for cls, m in missing.items() if m} == {}


@pytest.mark.parametrize(
    "name",
    ["FailReply", "AsyncReply", "KatcpDeviceError", "KatcpClientError", "KatcpSyntaxError"],
)
def test_documented_exceptions(name):
    assert issubclass(getattr(katcpx, name), Exception)


def test_next_behaves_as_in_katcp_python():
    logger = katcpx.DeviceLogger(None)
    with pytest.raises(TypeError, match="not an iterator"):
        logger.next()
