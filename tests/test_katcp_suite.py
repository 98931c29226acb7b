"""katcp-python 0.9.3's own test modules, run against katcpx through a ``katcp`` import shim.

The modules come from the katcp 0.9.3 wheel at test time and run in their own venv (see
``tests/katcp_suite/runner.py``). Tests that rely on katcp-python internals or on a difference
the README lists are deselected by ``tests/katcp_suite_exceptions.txt``, one line each with
its reason; every other test must pass.
"""

from __future__ import annotations

import sys

import pytest
from katcp_suite.runner import ensure_suite_venv, read_exceptions, run_suite, unpack_tests

#: The suite runs once per CI run, on the Python the peer venv (katcp-python 0.9.3) also uses.
SUITE_PYTHON = (3, 11)

MODULES = [
    "test_core.py",
    "test_kattypes.py",
    "test_server.py",
    "test_client.py",
    "test_sampling.py",
    "test_testutils.py",
    "test_ioloop_manager.py",
    "test_resource.py",
    "test_inspecting_client.py",
    "test_resource_client.py",
    "test_sensortree.py",
    "test_fake_clients.py",
    "test_compat.py",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sys.version_info[:2] != SUITE_PYTHON,
        reason="katcp-python's own suite runs once per CI run, on Python 3.11 "
        "(the newest Python katcp-python 0.9.3 runs on)",
    ),
]


def test_exceptions_file_is_well_formed():
    entries = read_exceptions()
    for node in entries:
        module = node.split("::")[0]
        assert module in MODULES, f"{node}: not one of the modules this suite runs"


@pytest.mark.timeout(1800)
def test_katcp_python_suite_passes(tmp_path, capsys):
    python = ensure_suite_venv()
    unpacked = unpack_tests(tmp_path)
    missing = [name for name in MODULES if name not in unpacked]
    assert not missing, f"the katcp 0.9.3 wheel lacks {missing}"
    results, output = run_suite(python, tmp_path, MODULES)
    with capsys.disabled():
        print("\nkatcp-python 0.9.3 suite against katcpx (module: passed / failed / skipped):")
        for name, result in results.items():
            print(f"  {name}: {result.passed} / {len(result.failed)} / {result.skipped}")
    failed = [node for result in results.values() for node in result.failed]
    total = sum(r.passed for r in results.values())
    assert total > 0, "no katcp-python test ran:\n" + output[-5000:]
    assert not failed, f"{len(failed)} failed:\n" + "\n".join(failed) + "\n" + output[-8000:]
