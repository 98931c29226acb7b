"""Names katcp-python's ``katcp.server`` module exports besides its classes.

Constants, re-exported types and decorators, and ``return_future``; gathered here so that
``katcpx/server/__init__.py`` stays a plain list of exports.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from tornado import gen

from .._sensor_informs import format_inform_v4, format_inform_v5
from ..compat import ensure_native_str
from ..flags import (
    DEFAULT_KATCP_MAJOR,
    SEC_TS_KATCP_MAJOR,
    VERSION_CONNECT_KATCP_MAJOR,
    ProtocolFlags,
)
from ..kattypes import (
    MS_TO_SEC_FAC,
    SEC_TO_MS_FAC,
    Int,
    Str,
    has_katcp_protocol_flags,
    minimum_katcp_version,
    request,
    return_reply,
)
from ..message import Message
from ..parser import MessageParser
from ..sampling import SampleNone, SampleStrategy
from .metaclass import DeviceMetaclass

__all__ = [
    "BASE_REQUESTS",
    "DEFAULT_KATCP_MAJOR",
    "DeviceServerMetaclass",
    "Int",
    "MS_TO_SEC_FAC",
    "Message",
    "MessageParser",
    "ProtocolFlags",
    "SEC_TO_MS_FAC",
    "SEC_TS_KATCP_MAJOR",
    "SampleNone",
    "SampleStrategy",
    "Str",
    "VERSION_CONNECT_KATCP_MAJOR",
    "ensure_native_str",
    "format_inform_v4",
    "format_inform_v5",
    "has_katcp_protocol_flags",
    "minimum_katcp_version",
    "request",
    "return_future",
    "return_reply",
]

#: katcp-python's other name for the device metaclass.
DeviceServerMetaclass = DeviceMetaclass

#: The value of katcp-python 0.9.3's ``katcp.server.BASE_REQUESTS`` (it includes the names
#: of its test server's requests).
BASE_REQUESTS = frozenset(
    {
        "client-list",
        "halt",
        "help",
        "log-level",
        "new-command",
        "raise-exception",
        "raise-fail",
        "restart",
        "sensor-list",
        "sensor-sampling",
        "sensor-sampling-clear",
        "sensor-value",
        "version-list",
        "watchdog",
    }
)


def return_future(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``fn`` so it always returns a future (a plain result comes back resolved)."""

    @functools.wraps(fn)
    def decorated(*args: Any, **kwargs: Any) -> Any:
        return gen.maybe_future(fn(*args, **kwargs))

    return decorated
