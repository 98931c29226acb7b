"""pytest plugin for the katcp-python suite run: deselect exactly the listed node ids.

``--deselect`` matches node-id prefixes (``test_bytes`` would also drop ``test_bytes_mid``),
so the runner passes the list here instead, as a JSON file named by ``KATCPX_DESELECT``.
"""

from __future__ import annotations

import json
import os


def pytest_collection_modifyitems(session, config, items):
    path = os.environ.get("KATCPX_DESELECT")
    if not path:
        return
    with open(path) as handle:
        wanted = set(json.load(handle))
    keep = [item for item in items if item.nodeid not in wanted]
    dropped = [item for item in items if item.nodeid in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
