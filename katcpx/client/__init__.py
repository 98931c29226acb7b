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

from .async_client import DEFAULT, AsyncClient, BlockingClient, CallbackClient, is_timeout_reply
from .device_client import DeviceClient, KatcpClientDisconnected, KatcpVersionError

__all__ = [
    "DEFAULT",
    "AsyncClient",
    "BlockingClient",
    "CallbackClient",
    "DeviceClient",
    "KatcpClientDisconnected",
    "KatcpVersionError",
    "is_timeout_reply",
]
