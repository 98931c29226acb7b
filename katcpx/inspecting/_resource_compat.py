"""The parts of katcp-python's ``katcp.resource_client`` built on ``InspectingClientAsync``.

katcpx's own :class:`~katcpx.resource.KATCPClientResource` keeps its model with
:class:`katcpx.resource.InspectingClient`; these classes serve code written against katcp-python's
building blocks: requests issued through a reply-wrapping inspecting client, and a sensors
manager that remembers strategies and re-applies them after a reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from ..asyncutil import AsyncEvent, log_future_exceptions, transform_future, until_any
from ..message import Message
from ..resource import (
    KATCPClientResourceContainer,
    KATCPReply,
    KATCPRequest,
    KATCPSensor,
    KATCPSensorError,
    KATCPSensorsManager,
    SensorResultTuple,
    escape_name,
    normalize_strategy_parameters,
)
from ._client import InspectingClientAsync

__all__ = [
    "KATCPClientResourceRequest",
    "KATCPClientResourceSensorsManager",
    "ReplyWrappedInspectingClientAsync",
    "list_sensors",
    "monitor_resource_sync_state",
]

log = logging.getLogger("katcp.resource")


class ReplyWrappedInspectingClientAsync(InspectingClientAsync):
    """An inspecting client whose :meth:`wrapped_request` gives :class:`KATCPReply` futures."""

    reply_wrapper = staticmethod(lambda x: KATCPReply(*x))

    def wrapped_request(self, request: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Send ``?request *args``; a future of its :class:`KATCPReply`.

        Keywords ``timeout``, ``mid``, ``use_mid``. A message that cannot be built gives a
        failed future.
        """
        try:
            msg = Message.request(request, *args, mid=kwargs.get("mid"))
        except Exception as exc:
            failed: asyncio.Future[Any] = asyncio.Future()
            failed.set_exception(exc)
            return failed
        reply = self.katcp_client.future_request(msg, kwargs.get("timeout"), kwargs.get("use_mid"))
        return transform_future(self.reply_wrapper, reply)


class KATCPClientResourceRequest(KATCPRequest):
    """A request issued through a client's ``wrapped_request`` (katcp-python's class).

    Parameters
    ----------
    request_description
        Dict with ``name``, ``description`` and ``timeout_hint``.
    client
        Has ``wrapped_request(name, *args, **kwargs)``, e.g.
        :class:`ReplyWrappedInspectingClientAsync`.
    is_active
        Returns whether the owning resource is active.
    """

    def __init__(
        self,
        request_description: dict[str, Any],
        client: Any,
        is_active: Callable[[], bool] = lambda: True,
    ) -> None:
        self._client = client
        super().__init__(request_description, is_active=is_active)

    def issue_request(self, *args: Any, **kwargs: Any) -> Any:
        """Send the request; ``timeout`` defaults to the server's hint for it."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_hint
        return self._client.wrapped_request(self.name, *args, **kwargs)


class KATCPClientResourceSensorsManager:
    """Sensor objects, strategies and polling for a resource, through an inspecting client.

    Strategies are remembered by sensor name so :meth:`reapply_sampling_strategies` can set
    them again after a reconnect.

    Parameters
    ----------
    inspecting_client
        Has ``wrapped_request``, ``future_check_sensor`` and ``ioloop``.
    resource_name
        Name of the owning resource.
    logger
        Where to log.
    """

    def __init__(
        self, inspecting_client: Any, resource_name: str, logger: logging.Logger = log
    ) -> None:
        self._inspecting_client = inspecting_client
        self.time = inspecting_client.ioloop.time
        self._strategy_cache: dict[str, tuple[str, ...]] = {}
        self._resource_name = resource_name
        self._logger = logger

    @property
    def name(self) -> str:
        """Name of the owning resource (what :class:`KATCPSensor` calls its parent)."""
        return self._resource_name

    @property
    def resource_name(self) -> str:
        """Name of the owning resource."""
        return self._resource_name

    def _cache_key(self, sensor_name: str) -> str:
        if sensor_name in self._strategy_cache:
            return sensor_name
        escaped = escape_name(sensor_name)
        for key in self._strategy_cache:
            if escape_name(key) == escaped:
                return key
        return sensor_name

    def sensor_factory(self, **sensor_description: Any) -> KATCPSensor:
        """A :class:`KATCPSensor` managed here; a remembered strategy is set again."""
        sensor = KATCPSensor(sensor_description, self)
        cached = self._strategy_cache.get(sensor_description["name"])
        if cached:
            log_future_exceptions(
                self._logger, self.set_sampling_strategy(sensor_description["name"], cached)
            )
        return sensor

    def get_sampling_strategy(self, sensor_name: str) -> tuple[str, ...]:
        """The remembered strategy, or ``('none',)``."""
        cached = self._strategy_cache.get(self._cache_key(sensor_name))
        return cached if cached else normalize_strategy_parameters("none")

    def set_sampling_strategy(
        self, sensor_name: str, strategy_and_params: Any
    ) -> asyncio.Future[Any]:
        """Remember and set a strategy; a future of ``(True, strategy)`` or
        ``(False, error text)``."""

        async def setting() -> tuple[bool, Any]:
            try:
                strategy = normalize_strategy_parameters(strategy_and_params)
                self._strategy_cache[sensor_name] = strategy
                reply = await self._inspecting_client.wrapped_request(
                    "sensor-sampling", sensor_name, *strategy
                )
                if not reply.succeeded:
                    raise KATCPSensorError(
                        f"Error setting strategy for sensor {sensor_name}: \n{reply!s}"
                    )
                return True, strategy
            except Exception as exc:
                self._logger.exception("Exception found!")
                return False, str(exc)

        return asyncio.ensure_future(setting())

    def drop_sampling_strategy(self, sensor_name: str) -> None:
        """Forget the sensor's strategy (the device keeps it)."""
        self._strategy_cache.pop(self._cache_key(sensor_name), None)

    def reapply_sampling_strategies(self) -> asyncio.Future[None]:
        """Set every remembered strategy again, skipping sensors that no longer exist."""

        async def reapplying() -> None:
            for name, strategy in list(self._strategy_cache.items()):
                try:
                    if not await self._inspecting_client.future_check_sensor(name):
                        self._logger.warning(
                            "Did not set strategy for non-existing sensor %s", name
                        )
                        continue
                    await self.set_sampling_strategy(name, strategy)
                except KATCPSensorError as exc:
                    self._logger.error("Error reapplying strategy for sensor %s: %s", name, exc)
                except Exception:
                    self._logger.exception("Unhandled exception reapplying strategy for %s", name)

        return asyncio.ensure_future(reapplying())

    def poll_sensor(self, sensor_name: str) -> asyncio.Future[None]:
        """Ask for the sensor's value (the reply's inform updates the sensor).

        The future fails with :class:`KATCPSensorError` if the device does not reply ok.
        """

        async def polling() -> None:
            reply = await self._inspecting_client.wrapped_request("sensor-value", sensor_name)
            if not reply.succeeded:
                raise KATCPSensorError(f"Error polling sensor {sensor_name}: \n{reply!s}")

        return asyncio.ensure_future(polling())


KATCPSensorsManager.register(KATCPClientResourceSensorsManager)


def list_sensors(
    parent_class: Any,
    sensor_items: Iterable[tuple[str, Any]],
    filter: str,
    strategy: bool,
    status: Any,
    use_python_identifiers: bool,
    tuple: bool,
    refresh: bool,
) -> asyncio.Future[list[Any]]:
    """katcp-python's helper for ``list_sensors``: a future of the matching sensors.

    Sensors of a container (``parent_class`` has ``children``) are named
    ``<resource>.<sensor>``, except aggregates (``agg_*``).
    """
    import builtins

    async def listing() -> list[Any]:
        pattern = re.compile(filter)
        none = normalize_strategy_parameters("none")
        found: list[Any] = []
        sensors = dict(sensor_items)
        for ident in sorted(sensors):
            sensor = sensors[ident]
            name_matches = pattern.search(ident if use_python_identifiers else sensor.name)
            if not name_matches or (strategy and sensor.sampling_strategy == none):
                continue
            if refresh:
                await sensor.get_value()
            prefix = ""
            if _is_container(parent_class) and not sensor.name.startswith("agg_"):
                prefix = sensor.parent_name + "."
            reading = sensor.reading
            if status and reading.status not in status:
                continue
            if tuple:
                found.append(
                    builtins.tuple(
                        (
                            prefix + sensor.name,
                            reading.value,
                            reading.timestamp,
                            sensor.type,
                            sensor.units,
                            reading.received_timestamp,
                            reading.status,
                            sensor.sampling_strategy,
                        )
                    )
                )
            else:
                found.append(
                    SensorResultTuple(
                        object=sensor,
                        name=prefix + sensor.name,
                        python_identifier=ident,
                        description=sensor.description,
                        units=sensor.units,
                        type=sensor.type,
                        reading=reading,
                    )
                )
        return found

    return asyncio.ensure_future(listing())


def _is_container(parent: Any) -> bool:
    return isinstance(parent, KATCPClientResourceContainer)


def monitor_resource_sync_state(
    resource: Any, callback: Callable[[bool], Any], exit_event: AsyncEvent | None = None
) -> asyncio.Future[None]:
    """Call ``callback(True/False)`` whenever ``resource`` becomes synced / unsynced.

    It starts with ``callback(False)`` and runs until ``exit_event`` is set.
    """
    done = exit_event or AsyncEvent()

    async def monitoring() -> None:
        callback(False)
        while not done.is_set():
            await until_any(resource.until_synced(), done.until_set())
            if done.is_set():
                break
            callback(True)
            await until_any(resource.until_not_synced(), done.until_set())
            if done.is_set():
                break
            callback(False)

    return asyncio.ensure_future(monitoring())
