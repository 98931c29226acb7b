"""katcp-python's abstract resource classes (``katcp.resource``) and its dummy request.

:class:`KATCPResource` and :class:`KATCPSensorsManager` are abstract base classes; katcpx's
:class:`~katcpx.resource.KATCPClientResource` and container are registered as virtual
subclasses, so ``isinstance`` checks written for katcp-python hold.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from ..message import Message
from ._objects import KATCPRequest
from ._types import KATCPReply, escape_name

__all__ = ["KATCPDummyRequest", "KATCPResource", "KATCPSensorsManager"]


class KATCPResource(abc.ABC):
    """The interface of a KATCP resource (one device, or a container of them)."""

    def __init__(self) -> None:
        self._active = True

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The resource's name."""

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """What the resource is."""

    @property
    @abc.abstractmethod
    def address(self) -> Any:
        """Its ``(host, port)``, or None for a container."""

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool:
        """Whether it is connected."""

    @property
    @abc.abstractmethod
    def req(self) -> Any:
        """Its requests, by Python identifier."""

    @property
    @abc.abstractmethod
    def sensor(self) -> Any:
        """Its sensors, by Python identifier."""

    @property
    @abc.abstractmethod
    def parent(self) -> Any:
        """The resource containing it, or None."""

    @property
    @abc.abstractmethod
    def children(self) -> Any:
        """The resources it contains."""

    @abc.abstractmethod
    def list_sensors(
        self,
        filter: str = "",
        strategy: bool = False,
        status: str = "",
        use_python_identifiers: bool = True,
        tuple: bool = False,
        refresh: bool = False,
    ) -> Any:
        """List the sensors matching the filters (a future of a list)."""

    def wait(self, sensor_name: str, condition_or_value: Any, timeout: float = 5) -> Any:
        """A future resolving True once the sensor meets the condition, False on timeout."""

        async def waiting() -> bool:
            sensor = self.sensor[escape_name(sensor_name)]
            try:
                await sensor.wait(condition_or_value, timeout)
            except (TimeoutError, asyncio.TimeoutError):
                return False
            return True

        return asyncio.ensure_future(waiting())

    def set_active(self, active: bool) -> None:
        """Set whether the resource (and its children) may issue requests."""
        self._active = bool(active)
        for child in dict.values(self.children):
            child.set_active(active)

    def is_active(self) -> bool:
        """Whether the resource may issue requests."""
        return self._active


class KATCPSensorsManager(abc.ABC):
    """What a :class:`~katcpx.resource.KATCPSensor` needs from its owner."""

    @abc.abstractmethod
    def time(self) -> float:
        """The current time in seconds."""

    @abc.abstractmethod
    def get_sampling_strategy(self, sensor_name: str) -> Any:
        """The sensor's strategy as a tuple."""

    @abc.abstractmethod
    def set_sampling_strategy(self, sensor_name: str, strategy_and_parms: Any) -> Any:
        """Set the sensor's strategy (a future)."""

    @abc.abstractmethod
    def drop_sampling_strategy(self, sensor_name: str) -> None:
        """Forget the sensor's strategy."""

    @abc.abstractmethod
    def poll_sensor(self, sensor_name: str) -> Any:
        """Ask for the sensor's value (a future)."""

    @abc.abstractmethod
    def reapply_sampling_strategies(self) -> Any:
        """Set every remembered strategy again (a future)."""


class KATCPDummyRequest(KATCPRequest):
    """A request that answers ``!fake ok`` at once, without a device."""

    def issue_request(self, *args: Any, **kwargs: Any) -> asyncio.Future[KATCPReply]:
        future: asyncio.Future[KATCPReply] = asyncio.Future()
        future.set_result(KATCPReply(Message.reply("fake", "ok"), []))
        return future
