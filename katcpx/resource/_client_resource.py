"""``KATCPClientResource``: one KATCP server exposed as ``.req`` and ``.sensor`` attributes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tornado.ioloop import IOLoop

from .._anyloop import done_future
from ..flags import ProtocolFlags
from ..message import Message
from ._inspecting import InspectingClient, InspectingOwner, ModelChanges
from ._listing import list_sensors
from ._model import ResourceModel
from ._objects import KATCPRequest, KATCPSensor
from ._sampling import SensorSamplingMixin
from ._state import StateMachine
from ._strategies import StrategyBook
from ._types import (
    AttrDict,
    KATCPReply,
    KATCPSensorError,
    SensorWaitTimeout,
    StrategyParams,
    escape_name,
)

if TYPE_CHECKING:
    from ..metrics._stats import ResourceStats

__all__ = ["KATCPClientResource", "ResourceParent"]

log = logging.getLogger("katcp.resource")

_STATES = ("disconnected", "syncing", "synced")


def _name_set(names: Iterable[str]) -> set[str]:
    return {escape_name(n) for n in names}


class ResourceParent(Protocol):
    """What a resource tells the container it belongs to (its `parent`), on its loop."""

    def child_requests_changed(self, child: KATCPClientResource) -> None:
        """The child's exposed requests changed."""

    def child_sensors_changed(
        self, child: KATCPClientResource, added: Sequence[str]
    ) -> dict[str, StrategyParams]:
        """The child's sensors changed; `added` are the new sensors' identifiers.

        Returns the strategies the container wants for added sensors that have none (the
        child memorises them before it sends its strategies).
        """


class KATCPClientResource(SensorSamplingMixin):
    """Class managing a client connection to a single KATCP resource.

    It inspects the server's KATCP interface and exposes its requests as
    ``resource.req.<python_identifier>`` and its sensors as
    ``resource.sensor.<python_identifier>``. Everything runs on one tornado IOLoop (see
    :meth:`set_ioloop`); call the methods from that loop, or use
    :class:`~katcpx.resource.ThreadSafeKATCPClientResourceWrapper` from other threads.

    Parameters
    ----------
    resource_spec
        Dict with keys:

        name : str
            Name of the resource.
        address : (str, int)
            Host and port of the server.
        description : str, optional
            Description of the resource.
        controlled : bool, default False
            Whether requests are exposed (sensors always are).
        always_allowed_requests : sequence of str, optional
            Requests exposed even when not controlled (``-`` and ``_`` are equivalent).
        always_excluded_requests : sequence of str, optional
            Requests never exposed; overrides `always_allowed_requests`.
        auto_reconnect : bool, default True
            Reconnect when the connection drops.
        auto_reconnect_delay : float, default 0.5
            Seconds before the first reconnection attempt. Each further failed attempt
            doubles the delay, up to `auto_reconnect_max_delay`; every delay is randomly
            shortened by up to half, so many clients of a restarted server spread out.
        auto_reconnect_max_delay : float, default 2.0
            Upper bound of the reconnection delay.
        preset_protocol_flags : ProtocolFlags, optional
            Assume these protocol flags instead of the server's ``#version-connect``.
        timeout : float, optional
            Default request timeout (5 s) when the server gives no hint.
        ssl_context : ssl.SSLContext, optional
            Connect with TLS (see :mod:`katcpx.tls`); plain TCP when absent. A katcpx
            extension; containers pass it on from each resource's spec.
    parent
        The container this resource belongs to, if any.
    logger
        Logger to log to.
    """

    #: Suggested time after which long loops yield to the event loop.
    MAX_LOOP_LATENCY = 0.03

    def __init__(
        self,
        resource_spec: dict[str, Any],
        parent: Any = None,
        logger: logging.Logger = log,
    ) -> None:
        self._address: tuple[str, int] = tuple(resource_spec["address"])
        self._name: str = resource_spec["name"]
        self._description: str = resource_spec.get("description", "")
        self.always_allowed_requests = _name_set(resource_spec.get("always_allowed_requests", ()))
        self.always_excluded_requests = _name_set(resource_spec.get("always_excluded_requests", ()))
        self._controlled = bool(resource_spec.get("controlled", False))
        self.auto_reconnect = bool(resource_spec.get("auto_reconnect", True))
        self.auto_reconnect_delay = float(resource_spec.get("auto_reconnect_delay", 0.5))
        # Backoff is capped low: a restarted server should get its clients back within
        # seconds, while the jitter still spreads a fleet of them out.
        self.auto_reconnect_max_delay = float(
            resource_spec.get("auto_reconnect_max_delay", max(2.0, self.auto_reconnect_delay))
        )
        self._preset_protocol_flags: ProtocolFlags | None = resource_spec.get(
            "preset_protocol_flags"
        )
        self._default_timeout: float | None = resource_spec.get("timeout", 5.0)
        self._ssl_context = resource_spec.get("ssl_context")
        self._logger = logger
        self._parent = parent
        self._ioloop: IOLoop | None = None
        self._client: InspectingClient | None = None
        self._active = True
        self._op_accessor: Any = None
        self._model = ResourceModel(self._name, logger)
        self._strategies = StrategyBook(self._name, logger, self._default_timeout)
        self._owner = InspectingOwner(self._client_state, self._apply_changes, self._sensor_status)
        self._state = StateMachine(_STATES, "disconnected")
        # KATCP major version of the connection, fixed per sync (timestamps are ms in v4).
        self._major_version = 5
        #: Counters kept while metrics are on (``katcpx.metrics.instrument_resource``).
        self.metrics: ResourceStats | None = None

    # -- properties ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"disconnected"``, ``"syncing"`` or ``"synced"``."""
        return self._state.state

    @property
    def controlled(self) -> bool:
        """Whether requests are exposed."""
        return self._controlled

    @property
    def req(self) -> AttrDict:
        """The exposed requests, by Python identifier."""
        return self._model.req

    @property
    def sensor(self) -> AttrDict:
        """The sensors, by Python identifier."""
        return self._model.sensor

    @property
    def op(self) -> Any:
        """The device's long-running operations: ``await res.op.slew(az=10, el=45)``.

        An :class:`~katcpx.ops.AsyncOpAccessor` (see ``docs/operations.md``).
        """
        if self._op_accessor is None:
            self._op_accessor = self.op_accessor()
        return self._op_accessor

    def op_accessor(self, *, sync: bool | None = None, timeout: float | None = 5.0) -> Any:
        """A new operations accessor over this resource's requests (see :attr:`op`).

        `sync` True gives a blocking one; `timeout` is seconds per reply.
        """
        from ..ops import op_accessor  # operations load the server side: import on first use

        return op_accessor(self._request, device=self.name, timeout=timeout, sync=bool(sync))

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the server."""
        return self._address

    @property
    def host(self) -> str:
        """Host of the server."""
        return self._address[0]

    @property
    def port(self) -> int:
        """Port of the server."""
        return self._address[1]

    @property
    def address_string(self) -> str:
        """``host:port`` of the server."""
        return f"{self._address[0]}:{self._address[1]}"

    @property
    def name(self) -> str:
        """Name of the resource."""
        return self._name

    @property
    def description(self) -> str:
        """Description of the resource."""
        return self._description

    @property
    def parent(self) -> Any:
        """The container this resource belongs to, or None."""
        return self._parent

    @property
    def parent_name(self) -> str | None:
        """Name of the parent container, or None."""
        return None if self._parent is None else self._parent.name

    @property
    def children(self) -> AttrDict:
        """A client resource has no children."""
        return AttrDict()

    @property
    def synced(self) -> bool:
        """Whether the state is ``"synced"``."""
        return self._state.state == "synced"

    @property
    def versions(self) -> dict[str, tuple[str, ...]]:
        """Version information from the server's ``#version-connect`` informs."""
        return dict(self._client.versions) if self._client is not None else {}

    @property
    def last_connect_time(self) -> float | None:
        """Time of the last successful connection (seconds since the epoch)."""
        return None if self._client is None else self._client.last_connect_time

    @property
    def last_connect_error(self) -> str | None:
        """Why the last connection failed or was closed by the server, or None."""
        return None if self._client is None else self._client.last_connect_error

    @property
    def protocol_flags(self) -> ProtocolFlags | None:
        """The server's protocol flags, once known."""
        return None if self._client is None else self._client.protocol_flags

    @property
    def dummy_unknown_requests(self) -> bool:
        """Kept for katcp-python compatibility; unknown requests are never faked."""
        return False

    # -- activity and connection ----------------------------------------------------------

    def is_active(self) -> bool:
        """Whether requests may be made (see :meth:`set_active`)."""
        return self._active

    def set_active(self, active: bool) -> None:
        """Allow (True) or refuse (False, raising ``KATCPResourceInactive``) requests."""
        self._active = bool(active)

    def is_connected(self) -> bool:
        """True if the state is not ``"disconnected"``, i.e. syncing or synced."""
        return self._state.state != "disconnected"

    def next(self) -> Any:
        """Python 2 iterator protocol left over in katcp-python's API; resources aren't iterators."""
        raise TypeError(f"{type(self).__name__!r} object is not an iterator")

    # -- life cycle ------------------------------------------------------------------------

    def set_ioloop(self, ioloop: IOLoop | None = None) -> None:
        """Set the tornado IOLoop to use (default: ``IOLoop.current()``); call before start."""
        self._ioloop = ioloop if ioloop is not None else IOLoop.current()

    @property
    def ioloop(self) -> IOLoop | None:
        """The IOLoop the resource runs on (None before :meth:`set_ioloop` / :meth:`start`)."""
        return self._ioloop

    @property
    def inspecting_owner(self) -> InspectingOwner:
        """What an inspecting client reports this resource's sync state, model changes and
        sensor informs to (pass it as ``owner`` when overriding
        :meth:`inspecting_client_factory`)."""
        return self._owner

    def inspecting_client_factory(
        self, host: str, port: int, ioloop_set_to: IOLoop | None
    ) -> InspectingClient:
        """Return the inspecting client for `host`, `port` (override to substitute one)."""
        client = InspectingClient(
            host,
            port,
            owner=self._owner,
            timeout=self._default_timeout,
            logger=self._logger,
            auto_reconnect=self.auto_reconnect,
        )
        client.auto_reconnect_delay = self.auto_reconnect_delay
        client.auto_reconnect_max_delay = self.auto_reconnect_max_delay
        client.ssl_context = self._ssl_context
        if ioloop_set_to is not None:
            client.set_ioloop(ioloop_set_to)
        return client

    def start(self) -> None:
        """Start the client and connect."""
        if self._ioloop is None:
            self.set_ioloop()
        client = self.inspecting_client_factory(self.host, self.port, self._ioloop)
        if self._preset_protocol_flags is not None:
            client.preset_protocol_flags(self._preset_protocol_flags)
        self._client = client
        client.start()

    def stop(self) -> None:
        """Stop the client (disconnects; await :meth:`until_stopped` to know it's done)."""
        if self._client is not None:
            self._client.stop()

    def until_stopped(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Future that resolves when the inspecting client has stopped."""
        if self._client is None:
            return done_future(True)
        return self._client.until_stopped(timeout)

    # -- states ----------------------------------------------------------------------------

    def until_state(self, state: str, timeout: float | None = None) -> asyncio.Future[bool]:
        """Future that resolves when the state is `state`.

        Parameters
        ----------
        state
            One of ``"disconnected"``, ``"syncing"``, ``"synced"``.
        timeout
            Seconds to wait; the future fails with ``TimeoutError`` after that.
        """
        return self._state.until_state(state, timeout)

    def until_synced(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Future that resolves when the resource is synced."""
        return self._state.until_state("synced", timeout)

    def until_not_synced(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Future that resolves when the resource is not synced."""
        return self._state.until_state_in(("disconnected", "syncing"), timeout)

    def wait_connected(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Future that resolves when the state is not ``"disconnected"``."""
        return self._state.until_state_in(("syncing", "synced"), timeout)

    def _client_state(self, state: str) -> None:
        self._logger.debug("%s: state %s", self._name, state)
        self._state.set_state(state)
        if self.metrics is not None:
            self.metrics.state_changed(state)

    # -- model updates (called by the inspecting client) -----------------------------------

    async def _apply_changes(self, changes: ModelChanges) -> None:
        if changes.new_connection:
            self._major_version = self._major()
        added = self._model.apply(changes, self._make_request, self._make_sensor)
        for ident in added:
            self._strategies.adopt(ident)
        parent: ResourceParent | None = self._parent
        if parent is not None and (changes.requests_added or changes.requests_removed):
            parent.child_requests_changed(self)
        if parent is not None and (changes.sensors_added or changes.sensors_removed):
            # Before sending strategies: the container may want some for the new sensors.
            wanted = parent.child_sensors_changed(self, added)
            for ident, strategy in wanted.items():
                self._strategies.memorise(ident, strategy)
        if changes.new_connection:
            # The server starts every connection with no strategies: re-apply all of them.
            added = list(self._model.sensor)
        else:
            # A sensor the server announced may have been replaced with its strategies
            # dropped (aiokatcp does; katcpx's server keeps them): set them again, as
            # katcp-python's resource re-applies every strategy after each re-sync.
            added += [escape_name(name) for name in sorted(changes.sensors_announced)]
        await self._apply_strategies(self._strategies.sampled(added))

    def _make_request(self, desc: dict[str, Any]) -> KATCPRequest | None:
        ident = escape_name(desc["name"])
        if ident in self.always_excluded_requests:
            return None
        if self._controlled or ident in self.always_allowed_requests:
            return KATCPRequest(desc, self._send_request, self.is_active)
        return None

    def _make_sensor(self, desc: dict[str, Any]) -> KATCPSensor:
        return KATCPSensor(desc, _SensorsManager(self))

    def _sensor_status(self, msg: Message) -> None:
        self._model.sensor_status(msg, self._major_version)

    def _major(self) -> int:
        flags = self.protocol_flags
        return 5 if flags is None else flags.major

    # -- requests --------------------------------------------------------------------------

    async def _send_request(
        self,
        name: str,
        args: Sequence[Any],
        timeout: float | None,
        mid: int | None,
        use_mid: bool | None,
    ) -> KATCPReply:
        client = self._client
        if client is None:
            return KATCPReply(Message.reply(name, "fail", "Resource not started"), [])
        msg = Message.request(name, *args, mid=mid)
        fut = client.future_request(msg, timeout, use_mid)
        if isinstance(fut, concurrent.futures.Future):
            fut = asyncio.wrap_future(fut)
        if self.metrics is not None:
            self.metrics.track(name, fut)
        reply, informs = await fut
        return KATCPReply(reply, informs)

    def _request(
        self, name: str, *args: Any, timeout: float | None = None
    ) -> Awaitable[KATCPReply]:
        return self._send_request(name, args, timeout, None, None)

    # -- sensors and strategies ------------------------------------------------------------

    def list_sensors(
        self,
        filter: str = "",
        strategy: bool = False,
        status: str = "",
        use_python_identifiers: bool = True,
        tuple: bool = False,
        refresh: bool = False,
    ) -> asyncio.Future[list[Any]]:
        """List sensors available on this resource matching certain criteria.

        Parameters
        ----------
        filter
            Regular expression searched in each sensor's Python identifier (or KATCP name
            when `use_python_identifiers` is False).
        strategy
            Only list sensors with a strategy set.
        status
            Only list sensors whose status name matches this regular expression.
        use_python_identifiers
            Match `filter` against Python identifiers rather than KATCP names.
        tuple
            Return katcp-python's old tuples instead of :class:`SensorResultTuple`.
        refresh
            Fetch fresh values with ``?sensor-value`` first.

        Returns
        -------
        asyncio.Future
            Resolves with the list of matching sensors.
        """
        return asyncio.ensure_future(
            list_sensors(
                self,
                dict(self._model.sensor),
                filter,
                strategy,
                status,
                use_python_identifiers,
                tuple,
                refresh,
            )
        )

    async def poll_sensor(self, sensor_name: str) -> None:
        """Fetch a sensor's value with ``?sensor-value`` and update the sensor.

        Raises
        ------
        KATCPSensorError
            If the request fails.
        """
        sensor = dict.get(self._model.sensor, escape_name(sensor_name))
        name = sensor.name if sensor is not None else sensor_name
        reply = await self._request("sensor-value", name)
        if not reply:
            raise KATCPSensorError(f"Error polling sensor {name}:\n{reply!r}")
        self._model.sensor_values(reply.informs, self._major())

    def wait(
        self, sensor_name: str, condition_or_value: Any, timeout: float | None = 5
    ) -> asyncio.Future[bool]:
        """Wait for a sensor in this resource to satisfy a condition.

        Parameters
        ----------
        sensor_name
            KATCP name or Python identifier of the sensor.
        condition_or_value
            A value compared with the sensor's value, or a callable taking the reading.
        timeout
            Seconds to wait (None: forever).

        Returns
        -------
        asyncio.Future
            Resolves with True once the condition holds, or False after `timeout`.

        Raises
        ------
        KATCPSensorError
            If the sensor is not present or has no strategy set.
        """
        sensor = dict.get(self._model.sensor, escape_name(sensor_name))
        if sensor is None:
            raise KATCPSensorError(f"Sensor {sensor_name!r} not present on {self._name}")
        return asyncio.ensure_future(_wait_bool(sensor.wait(condition_or_value, timeout)))

    def __repr__(self) -> str:
        return (
            f"<{type(self).__module__}.{type(self).__name__}(name={self._name}) at 0x{id(self):x}>"
        )


async def _wait_bool(fut: Awaitable[bool]) -> bool:
    try:
        return await fut
    except SensorWaitTimeout:
        return False


class _SensorsManager:
    """What a resource hands its :class:`KATCPSensor` objects: katcp-python's sensor
    manager contract, where ``set_sampling_strategy`` resolves with ``(success, info)``
    (the resource's own method of that name resolves with a dict)."""

    def __init__(self, resource: KATCPClientResource) -> None:
        self._resource = resource

    @property
    def name(self) -> str:
        return self._resource.name

    def get_sampling_strategy(self, sensor_name: str) -> StrategyParams:
        return self._resource.get_sampling_strategy(sensor_name)

    def set_sampling_strategy(
        self, sensor_name: str, strategy_and_params: Any
    ) -> asyncio.Future[tuple[bool, Any]]:
        return self._resource.set_sensor_sampling_strategy(sensor_name, strategy_and_params)

    def drop_sampling_strategy(self, sensor_name: str) -> None:
        self._resource.drop_sampling_strategy(sensor_name)

    def poll_sensor(self, sensor_name: str) -> Awaitable[None]:
        return self._resource.poll_sensor(sensor_name)
