"""KATCP clients with katcp-python's API: DeviceClient, AsyncClient, CallbackClient, BlockingClient.

katcp-python code keeps working::

    client = katcpx.BlockingClient(host, port)
    client.start(timeout=5)
    client.wait_protocol(5)  # wait_ready(5) also waits for the request timeout hints
    reply, informs = client.blocking_request(katcpx.Message.request("sensor-value", "cpu.temp"))

Async code uses :meth:`AsyncClient.call`, which raises on anything but an ``ok`` reply::

    async with await katcpx.AsyncClient.connect(host, port) as client:
        reply, informs = await client.call("sensor-value", "cpu.temp", timeout=5)
"""

from typing import Any

from ..asyncutil import AsyncEvent, LatencyTimer, until_later
from ..compat import ensure_native_str
from ..errors import KatcpClientDisconnected, KatcpClientError, KatcpVersionError
from ..flags import SEC_TS_KATCP_MAJOR, ProtocolFlags
from ..kattypes import FLOAT_TS_KATCP_MAJOR, SEC_TO_MS_FAC
from ..message import Message
from ..parser import MessageParser
from ..server.metaclass import DeviceMetaclass
from ._async_client import DEFAULT, AsyncClient, BlockingClient, CallbackClient, Reply
from ._device_client import DeviceClient
from ._katcp_names import (
    address_to_string,
    make_threadsafe,
    make_threadsafe_blocking,
    request_check,
)
from ._requesting import is_timeout_reply

__all__ = [
    "AsyncEvent",
    "DeviceMetaclass",
    "FLOAT_TS_KATCP_MAJOR",
    "IOLoopManager",
    "KatcpClientError",
    "LatencyTimer",
    "Message",
    "MessageParser",
    "ProtocolFlags",
    "SEC_TO_MS_FAC",
    "SEC_TS_KATCP_MAJOR",
    "address_to_string",
    "ensure_native_str",
    "make_threadsafe",
    "make_threadsafe_blocking",
    "request_check",
    "until_later",
    "DEFAULT",
    "AsyncClient",
    "BlockingClient",
    "CallbackClient",
    "DeviceClient",
    "KatcpClientDisconnected",
    "KatcpVersionError",
    "Reply",
    "is_timeout_reply",
]


def __getattr__(name: str) -> Any:
    # katcp-python's katcp.client exports the loop manager, which lives with the resources.
    if name == "IOLoopManager":
        from ..ioloop_manager import IOLoopManager

        return IOLoopManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
