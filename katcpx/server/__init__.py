"""KATCP device servers: katcp-python's server API on tornado 6 / asyncio.

``DeviceServer`` handles the standard requests; ``AsyncDeviceServer`` runs handlers on the
loop; ``DeviceServerBase`` only dispatches. See the class docstrings for threading.
"""

from __future__ import annotations

from ..errors import AsyncReply, FailReply, KatcpDeviceError
from .base import DeviceServerBase
from .connection import ClientConnection, ClientRequestConnection
from .logger import DeviceLogger, KatcpLogHandler
from .metaclass import DeviceMetaclass
from .sampling_loop import SamplingManager, TimerScheduler
from .server import AsyncDeviceServer, DeviceServer, construct_name_filter

__all__ = [
    "AsyncDeviceServer",
    "AsyncReply",
    "ClientConnection",
    "ClientRequestConnection",
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
