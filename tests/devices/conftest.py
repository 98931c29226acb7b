"""Make ``katcpx_devices`` importable from the source tree when it is not installed."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("katcpx_devices") is None:
    _init = Path(__file__).resolve().parents[2] / "devices" / "__init__.py"
    _spec = importlib.util.spec_from_file_location("katcpx_devices", _init)
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["katcpx_devices"] = _module
    _spec.loader.exec_module(_module)
