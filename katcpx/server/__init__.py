"""KATCP device servers: katcp-python's server API on tornado 6 / asyncio.

``DeviceServer`` handles the standard requests; ``AsyncDeviceServer`` runs handlers on the
loop; ``DeviceServerBase`` only dispatches. See the class docstrings for threading.
"""

from __future__ import annotations

from typing import Any

from ..errors import AsyncReply, FailReply, KatcpDeviceError
from ._connection import ClientConnection, ClientRequestConnection, ConnectionState
from ._device import AsyncDeviceServer, DeviceServer
from ._dispatch import DeviceServerBase
from ._owner import ConnectionOwner
from ._sensors import construct_name_filter
from .katcp_names import (
    BASE_REQUESTS,
    DEFAULT_KATCP_MAJOR,
    MS_TO_SEC_FAC,
    SEC_TO_MS_FAC,
    SEC_TS_KATCP_MAJOR,
    VERSION_CONNECT_KATCP_MAJOR,
    DeviceServerMetaclass,
    Int,
    Message,
    MessageParser,
    ProtocolFlags,
    SampleNone,
    SampleStrategy,
    Str,
    ensure_native_str,
    format_inform_v4,
    format_inform_v5,
    has_katcp_protocol_flags,
    minimum_katcp_version,
    request,
    return_future,
    return_reply,
)
from .logger import DeviceLogger, KatcpLogHandler
from .metaclass import DeviceMetaclass
from .sampling_loop import SamplingManager, TimerScheduler

__all__ = [
    "BASE_REQUESTS",
    "DEFAULT_KATCP_MAJOR",
    "MS_TO_SEC_FAC",
    "SEC_TO_MS_FAC",
    "SEC_TS_KATCP_MAJOR",
    "VERSION_CONNECT_KATCP_MAJOR",
    "DeviceServerMetaclass",
    "IOLoopManager",
    "Int",
    "Message",
    "MessageParser",
    "ProtocolFlags",
    "SampleNone",
    "SampleStrategy",
    "Str",
    "ensure_native_str",
    "format_inform_v4",
    "format_inform_v5",
    "has_katcp_protocol_flags",
    "minimum_katcp_version",
    "request",
    "return_future",
    "return_reply",
    "with_relative_timeout",
    "AsyncDeviceServer",
    "AsyncReply",
    "ClientConnection",
    "ClientRequestConnection",
    "ConnectionOwner",
    "ConnectionState",
    "DeviceLogger",
    "DeviceMetaclass",
    "DeviceServer",
    "DeviceServerBase",
    "FailReply",
    "KatcpDeviceError",
    "KatcpLogHandler",
    "SamplingManager",
    "TimerScheduler",
    "construct_name_filter",
]


def __getattr__(name: str) -> Any:
    # katcp-python's katcp.server also exports these; they live with the resources' loop
    # manager, which the server package does not import unless asked.
    if name in ("IOLoopManager", "with_relative_timeout"):
        from .. import ioloop_manager

        return getattr(ioloop_manager, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
