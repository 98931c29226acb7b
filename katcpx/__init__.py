"""katcpx: a KATCP toolkit with katcp-python's API on tornado 6.

Code written for katcp-python switches by changing its import::

    import katcpx as katcp

The protocol core (messages, parser, flags, sensors, sampling logic, kattypes) is imported
eagerly and does no I/O. Servers, clients and resources are imported on first use, so
``import katcpx`` alone never imports tornado.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import VERSION, VERSION_STR, __version__
from .errors import (
    AsyncReply,
    ConnectionLost,
    FailReply,
    FailReplyError,
    InvalidReply,
    KatcpClientDisconnected,
    KatcpClientError,
    KatcpDeviceError,
    KatcpError,
    KatcpSyntaxError,
    KatcpTypeError,
    KatcpVersionError,
    MessageTooLong,
    NotARequestError,
    RequestFailed,
    RequestTimeout,
)
from .flags import ProtocolFlags
from .message import Message
from .parser import MessageParser, StreamParser

# Attribute name -> module that defines it, imported on first access.
_LAZY = {
    "Sensor": ".sensor",
    "DeviceMetaclass": ".server",
    "DeviceServerBase": ".server",
    "DeviceServer": ".server",
    "AsyncDeviceServer": ".server",
    "DeviceLogger": ".server",
    "DeviceClient": ".client",
    "AsyncClient": ".client",
    "CallbackClient": ".client",
    "BlockingClient": ".client",
    "KATCPClientResource": ".resource",
    "KATCPClientResourceContainer": ".resource",
    "AttrDict": ".core",
    "GenericSensorTree": ".sensortree",
    "BooleanSensorTree": ".sensortree",
    "AggregateSensorTree": ".sensortree",
}

#: katcp-python's module layout (``katcp.core``, ``katcp.testutils``, ...): after
#: ``import katcpx as katcp``, ``katcp.core.Message`` works; each module loads on first access.
KATCP_MODULES = frozenset(
    {
        "core",
        "server",
        "client",
        "kattypes",
        "sampling",
        "resource",
        "resource_client",
        "inspecting_client",
        "ioloop_manager",
        "sensortree",
        "fake_clients",
        "testutils",
        "compat",
        "object_proxies",
    }
)

__all__ = [
    "VERSION",
    "VERSION_STR",
    "__version__",
    "Message",
    "MessageParser",
    "StreamParser",
    "ProtocolFlags",
    "KatcpError",
    "KatcpSyntaxError",
    "MessageTooLong",
    "KatcpTypeError",
    "FailReply",
    "AsyncReply",
    "KatcpDeviceError",
    "KatcpClientError",
    "KatcpVersionError",
    "KatcpClientDisconnected",
    "NotARequestError",
    "RequestFailed",
    "FailReplyError",
    "InvalidReply",
    "RequestTimeout",
    "ConnectionLost",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in KATCP_MODULES:
        # import_module binds the submodule as this package's attribute itself.
        return importlib.import_module("." + name, __name__)
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'katcpx' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | KATCP_MODULES)
