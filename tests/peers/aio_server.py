"""aiokatcp peer server on its own asyncio loop in a background thread.

aiokatcp is a plain test dependency, so this peer runs in the test process. Its sensors and
requests mirror the katcp-python peer (see :mod:`peers.catalogue`).
"""

# No ``from __future__ import annotations``: aiokatcp reads the handlers' annotations at class
# creation with inspect.signature and needs real types, not strings.

import asyncio
import concurrent.futures
import enum
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import aiokatcp

from .catalogue import DEFAULT_FAIL_MESSAGE, DEFAULT_FLOAT_SENSORS, sensor_specs

__all__ = ["AiokatcpServerThread", "PeerAddress"]


class PeerAddress(NamedTuple):
    """Where a peer server listens."""

    host: str
    port: int


DiscreteValue = enum.Enum("DiscreteValue", {"ONE": "one", "TWO": "two", "THREE": "three"})

# KATCP type name -> (aiokatcp sensor type, converter from a plain Python value).
_TYPES: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "integer": (int, int),
    "float": (float, float),
    "boolean": (bool, bool),
    "string": (str, str),
    "timestamp": (aiokatcp.Timestamp, aiokatcp.Timestamp),
    "discrete": (DiscreteValue, lambda value: DiscreteValue[str(value).upper()]),
}


class _PeerDeviceServer(aiokatcp.DeviceServer):
    VERSION = "katcpx-peer-1.0"
    BUILD_STATE = "katcpx-peer-1.0"

    def __init__(self, host: str, port: int, n_float: int) -> None:
        super().__init__(host, port)
        for name, stype, description, units, _params, value in sensor_specs(n_float):
            sensor_type, convert = _TYPES[stype]
            self.sensors.add(
                aiokatcp.Sensor(
                    sensor_type,
                    name,
                    description,
                    units,
                    default=convert(value),
                    initial_status=aiokatcp.Sensor.Status.NOMINAL,
                )
            )

    async def request_echo(self, ctx: aiokatcp.RequestContext, *args: bytes) -> tuple:
        """Reply ok with the request's arguments."""
        return tuple(args)

    async def request_fail_with(
        self, ctx: aiokatcp.RequestContext, message: str = DEFAULT_FAIL_MESSAGE
    ) -> None:
        """Fail with the given message."""
        raise aiokatcp.FailReply(message)

    async def request_slow_echo(
        self, ctx: aiokatcp.RequestContext, delay: float, *args: bytes
    ) -> tuple:
        """Inform 'started', then reply ok with the arguments after a delay."""
        ctx.inform("started")
        await asyncio.sleep(delay)
        return tuple(args)

    async def request_hinted(self, ctx: aiokatcp.RequestContext) -> None:
        """Reply ok (aiokatcp has no request timeout hints)."""

    async def request_inform_burst(self, ctx: aiokatcp.RequestContext, count: int) -> int:
        """Send count #inform-burst informs, then reply ok count."""
        for i in range(count):
            ctx.inform(i)
        return count


class AiokatcpServerThread:
    """Context manager running the aiokatcp peer server in a background thread.

    Parameters
    ----------
    n_float : int
        Number of float sensors (``float.0`` ...).
    host : str
        Address to listen on; the port is chosen by the OS.
    timeout : float
        Seconds to wait for start-up, shutdown and each cross-thread call.

    Attributes
    ----------
    address : PeerAddress
        ``(host, port)`` once entered.
    server : aiokatcp.DeviceServer
        The server; only touch it from its loop (see :meth:`call`).
    """

    def __init__(
        self, n_float: int = DEFAULT_FLOAT_SENSORS, host: str = "127.0.0.1", timeout: float = 10.0
    ) -> None:
        self._n_float = n_float
        self._host = host
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="aiokatcp-peer", daemon=True
        )
        self.server: aiokatcp.DeviceServer | None = None
        self.address = PeerAddress(host, 0)

    def call(self, func: Callable[[], Any]) -> Any:
        """Run ``func()`` on the server's loop and return its result (or raise its error)."""

        async def run() -> Any:
            return func()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(self._timeout)

    def set_sensor(
        self, name: str, value: Any, status: str = "nominal", timestamp: float | None = None
    ) -> None:
        """Set a sensor's value from any thread.

        Parameters
        ----------
        name : str
            Sensor name.
        value
            Plain Python value (discrete sensors take the value's string).
        status : str
            KATCP status name.
        timestamp : float, optional
            Reading time; now if not given.
        """
        assert self.server is not None
        sensor = self.server.sensors[name]
        stype = next(s[1] for s in sensor_specs(self._n_float) if s[0] == name)
        converted = _TYPES[stype][1](value)
        status_value = aiokatcp.Sensor.Status[status.upper()]
        self.call(lambda: sensor.set_value(converted, status_value, timestamp))

    def __enter__(self) -> "AiokatcpServerThread":
        self._thread.start()

        async def start() -> aiokatcp.DeviceServer:
            server = _PeerDeviceServer(self._host, 0, self._n_float)
            await server.start()
            return server

        try:
            self.server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(
                self._timeout
            )
        except BaseException:
            self._shutdown()
            raise
        port = self.server.sockets[0].getsockname()[1]
        self.address = PeerAddress(self._host, port)
        return self

    def _shutdown(self) -> None:
        server = self.server
        if server is not None:
            try:
                asyncio.run_coroutine_threadsafe(server.stop(), self._loop).result(self._timeout)
            except concurrent.futures.TimeoutError:
                pass  # still stop the loop below; the thread is a daemon
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self._timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def __exit__(self, *exc_info: object) -> None:
        self._shutdown()
