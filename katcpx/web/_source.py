"""What the websocket and REST handlers need from where the sensors come from.

Two classes implement :class:`SensorSource`: :class:`~katcpx.web._hub.DeviceHub`, which
talks KATCP to the devices itself (the default), and
:class:`~katcpx.web._redis_source.RedisSource`, which reads what ``katcpx-gateway`` writes to
Redis (``katcpx-web --redis``). The handlers are written against this protocol only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ._history import HistoryStore
from ._hub import Sink

__all__ = ["SensorSource"]


class SensorSource(Protocol):
    """Devices, sensors, requests and subscriptions, as the web handlers use them.

    Sensor objects returned have ``name``, ``type``, ``units``, ``description``, ``params``
    (list of bytes) and ``reading`` (with ``value``, ``status``, ``timestamp``,
    ``received_timestamp``); request objects have ``name``, ``description`` and
    ``timeout_hint``, as :class:`~katcpx.resource.KATCPSensor` and
    :class:`~katcpx.resource.KATCPRequest` do. Errors are :class:`~katcpx.web._hub.HubError`
    subclasses.
    """

    @property
    def strategy(self) -> tuple[str, ...]:
        """The sampling strategy subscriptions get."""

    @property
    def history(self) -> HistoryStore:
        """Where history queries are answered."""

    @property
    def device_names(self) -> list[str]:
        """Names of the devices."""

    async def start(self) -> None:
        """Start serving (connect)."""

    async def stop(self) -> None:
        """Stop serving and forget all subscriptions."""

    def attach(self, sink: Sink) -> None:
        """Start sending device state changes to `sink`."""

    def detach(self, sink: Sink) -> None:
        """Drop `sink` and all its subscriptions."""

    def sinks(self) -> list[Sink]:
        """The attached sinks."""

    def subscriptions(self, sink: Sink) -> list[tuple[str, str]]:
        """``(device, sensor)`` pairs `sink` is subscribed to."""

    def sampled_since(self, device: str, sensor: str) -> float | None:
        """When sampling of `sensor` for this source was requested (None: not sampled)."""

    def freshness(
        self, device: str, sensor: str, received: float, connected: bool
    ) -> dict[str, Any]:
        """``age`` and ``stale`` of a sensor's cached reading (see :mod:`.freshness`)."""

    def subscriber_count(self, device: str, sensor: str) -> int:
        """How many sinks are subscribed to a sensor."""

    def subscribe(self, sink: Sink, device: str, sensor: str, safely: bool = False) -> str:
        """Subscribe `sink` to a sensor: ``subscribed``, ``already_subscribed`` or ``pending``."""

    def snapshot(self, device: str, sensor: str) -> list[str]:
        """The ``meta`` and latest ``update`` messages a new subscriber gets."""

    def unsubscribe(self, sink: Sink, device: str, sensor: str) -> bool:
        """Unsubscribe `sink` from a sensor; False if it was not subscribed."""

    def resource(self, device: str) -> Any:
        """The device's record; raises UnknownDevice if there is no such device."""

    def device_message(self, device: str) -> dict[str, Any]:
        """The ``device`` message of `device`."""

    def sensor(self, device: str, name: str) -> Any:
        """One sensor of `device`."""

    def sensors(self, device: str, filter: str = "") -> list[Any]:
        """Sensors of `device` whose names match regular expression `filter`."""

    def requests(self, device: str) -> list[Any]:
        """Requests of `device`, sorted by name."""

    def request(self, device: str, name: str) -> Any:
        """One request of `device`."""

    async def read(self, device: str, sensor: str) -> dict[str, Any]:
        """A fresh reading of a sensor, as its ``update`` message."""

    async def call(
        self, device: str, request: str, args: Sequence[Any] = (), timeout: float | None = None
    ) -> dict[str, Any]:
        """Issue a request and return its result (see :meth:`DeviceHub.call`)."""
