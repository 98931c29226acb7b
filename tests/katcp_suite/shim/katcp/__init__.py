"""Import shim: ``import katcp`` gives katcpx, ``katcp.<m>`` gives ``katcpx.<m>``.

Only katcp-python's own test modules use this (tests/katcp_suite/runner.py puts this folder on
their ``sys.path``). Each module is registered under both names so that ``katcp.core`` and
``katcpx.core`` are one module object, never two copies.
"""

import importlib
import sys

import katcpx

for _name in sorted(katcpx.KATCP_MODULES):
    try:
        sys.modules["katcp." + _name] = importlib.import_module("katcpx." + _name)
    except ModuleNotFoundError as exc:
        # A module katcpx lacks fails only the tests that import it.
        if exc.name != "katcpx." + _name:
            raise
sys.modules["katcp"] = katcpx
