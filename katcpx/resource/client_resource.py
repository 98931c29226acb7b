"""``KATCPClientResource``: one KATCP server exposed as ``.req`` and ``.sensor`` attributes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop

from .._anyloop import future_of
from ..errors import FailReplyError, InvalidReply, RequestFailed
from ..flags import ProtocolFlags
from ..message import Message
from ..peer_units import strategy_params_to_wire
from ._objects import KATCPRequest, KATCPSensor, Listener
from ._state import StateMachine
from ._types import (
    AttrDict,
    KATCPReply,
    KATCPSensorError,
    SensorResultTuple,
    SensorWaitTimeout,
    StrategyParams,
    escape_name,
    normalize_strategy_parameters,
)
from .inspecting import InspectingClient, ModelChanges

if TYPE_CHECKING:
    from ..metrics.stats import ResourceStats

__all__ = ["KATCPClientResource", "list_sensors"]

log = logging.getLogger("katcp.resource")

_STATES = ("disconnected", "syncing", "synced")
_NONE: StrategyParams = ("none",)
#: Longest comma-separated sensor list put in one bulk ``?sensor-sampling`` request.
_BULK_CHUNK_CHARS = 60_000
#: Extra reply timeout per sensor of a bulk ``?sensor-sampling``.
_BULK_SECONDS_PER_SENSOR = 0.005


def _name_set(names: Iterable[str]) -> set[str]:
    return {escape_name(n) for n in names}


class KATCPClientResource:
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
        self._sensor = AttrDict()
        self._op_accessor: Any = None
        self._req = AttrDict()
        self._sensors_by_name: dict[str, KATCPSensor] = {}
        # Strategies and listeners by Python identifier, kept across reconnects and for
        # sensors not seen yet; the filters of set_sampling_strategies apply to new sensors.
        self._strategy_cache: dict[str, StrategyParams] = {}
        self._strategy_filters: list[tuple[re.Pattern[str], StrategyParams]] = []
        self._listener_cache: dict[str, list[Listener]] = {}
        # Listeners registered directly on sensors that the server has since removed.
        self._orphan_listeners: dict[str, list[tuple[Listener, bool]]] = {}
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
        return self._req

    @property
    def sensor(self) -> AttrDict:
        """The sensors, by Python identifier."""
        return self._sensor

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

    def inspecting_client_factory(
        self, host: str, port: int, ioloop_set_to: IOLoop | None
    ) -> InspectingClient:
        """Return the inspecting client for `host`, `port` (override to substitute one)."""
        client = InspectingClient(
            host,
            port,
            owner=self,
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
            return future_of(lambda: _done_future(True))
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
        for name in changes.requests_removed:
            dict.pop(self._req, escape_name(name), None)
        for name, desc in changes.requests_added.items():
            ident = escape_name(name)
            if ident in self.always_excluded_requests:
                continue
            if self._controlled or ident in self.always_allowed_requests:
                self._req[ident] = KATCPRequest(desc, self._send_request, self.is_active)
        for name in changes.sensors_removed:
            ident = escape_name(name)
            old = dict.pop(self._sensor, ident, None)
            self._sensors_by_name.pop(name, None)
            if old is not None:
                self._orphan_listeners[ident] = old.listeners()
        to_apply: list[str] = []
        for name, desc in changes.sensors_added.items():
            ident = escape_name(name)
            sensor = KATCPSensor(desc, _SensorsManager(self))
            old = dict.get(self._sensor, ident)
            carried = old.listeners() if old is not None else self._orphan_listeners.pop(ident, [])
            for listener, reading in carried:
                sensor.register_listener(listener, reading)
            for listener in self._listener_cache.get(ident, ()):
                sensor.register_listener(listener, reading=True)
            if old is not None:
                self._sensors_by_name.pop(old.name, None)
            self._sensor[ident] = sensor
            self._sensors_by_name[name] = sensor
            if ident not in self._strategy_cache:
                for pattern, strategy in self._strategy_filters:
                    if pattern.search(ident):
                        self._strategy_cache[ident] = strategy
                        break
            to_apply.append(ident)
        if self._parent is not None and (changes.requests_added or changes.requests_removed):
            self._parent._child_requests_changed(self)
        if self._parent is not None and (changes.sensors_added or changes.sensors_removed):
            # Before applying strategies: the container may memorise some for new sensors.
            self._parent._child_sensors_changed(
                self, [escape_name(n) for n in changes.sensors_added]
            )
        if changes.new_connection:
            # The server starts every connection with no strategies: re-apply all of them.
            to_apply = list(self._sensor)
        await self._apply_strategies(
            [i for i in to_apply if self._strategy_cache.get(i, _NONE) != _NONE]
        )

    def _sensor_status(self, msg: Message) -> None:
        args = msg.arguments
        if len(args) < 5:
            return
        major = self._major_version
        raw_ts = args[0]
        try:
            count = int(args[1])
        except ValueError:
            return
        for i in range(count):
            base = 2 + 3 * i
            if base + 2 >= len(args):
                break
            sensor = self._sensors_by_name.get(args[base].decode("utf-8", "replace"))
            if sensor is None:
                continue
            try:
                sensor.set_formatted(raw_ts, args[base + 1], args[base + 2], major)
            except ValueError as exc:
                self._logger.warning("Bad #sensor-status for %s: %s", sensor.name, exc)

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
                dict(self._sensor),
                filter,
                strategy,
                status,
                use_python_identifiers,
                tuple,
                refresh,
            )
        )

    def get_sampling_strategy(self, sensor_name: str) -> StrategyParams:
        """The memorised strategy of a sensor (``("none",)`` if none)."""
        return self._strategy_cache.get(escape_name(sensor_name), _NONE)

    def set_sampling_strategy(
        self, sensor_name: str, strategy_and_parms: Any
    ) -> asyncio.Future[dict[str, Any]]:
        """Set a strategy for a sensor even if it is not yet known.

        The strategy is memorised and re-applied after reconnecting, and when the sensor
        appears.

        Parameters
        ----------
        sensor_name
            KATCP name or Python identifier of the sensor.
        strategy_and_parms
            ``"event"``, ``"period 0.5"`` or a sequence such as ``("event-rate", 1, 5)``.

        Returns
        -------
        asyncio.Future
            Resolves with ``{python_identifier: strategy_and_parms}`` (the value as passed,
            as katcp-python 0.9.3 does, whether or not the server accepted it: a refusal is
            logged as an error), or ``{}`` when the sensor is not known yet.
        """
        ident = escape_name(sensor_name)
        strategy = normalize_strategy_parameters(strategy_and_parms)
        self._strategy_cache[ident] = strategy
        if ident not in self._sensor or self._client is None or not self._client.is_connected():
            return _done_future({})
        return asyncio.ensure_future(
            _echo_strategy(self._apply_strategies([ident]), strategy_and_parms)
        )

    def set_sensor_sampling_strategy(
        self, sensor_name: str, strategy_and_parms: Any
    ) -> asyncio.Future[tuple[bool, Any]]:
        """Set a sensor's strategy; what :class:`~katcpx.resource.KATCPSensor` calls.

        Returns
        -------
        asyncio.Future
            Resolves with ``(True, normalised strategy)`` or ``(False, error text)``, the
            result of katcp-python 0.9.3's sensor manager.
        """
        ident = escape_name(sensor_name)
        try:
            strategy = normalize_strategy_parameters(strategy_and_parms)
        except ValueError as exc:
            return _done_future((False, str(exc)))
        self._strategy_cache[ident] = strategy

        async def setting() -> tuple[bool, Any]:
            results = await self._apply_strategies([ident])
            outcome = results.get(ident, strategy)
            if isinstance(outcome, str):
                return False, f"Error setting strategy for sensor {sensor_name}: \n{outcome}"
            return True, outcome

        return asyncio.ensure_future(setting())

    def set_sampling_strategies(
        self, filter: str, strategy_and_parms: Any
    ) -> asyncio.Future[dict[str, Any]]:
        """Set a strategy for all sensors matching `filter`, including unseen ones.

        Parameters
        ----------
        filter
            Regular expression searched in the sensors' Python identifiers.
        strategy_and_parms
            As for :meth:`set_sampling_strategy`.

        Returns
        -------
        asyncio.Future
            Resolves with ``{python_identifier: strategy_and_parms}`` (as passed, as in
            katcp-python 0.9.3; refusals are logged) for the current sensors.
        """
        pattern = re.compile(filter)
        strategy = normalize_strategy_parameters(strategy_and_parms)
        self._strategy_filters = [(p, s) for p, s in self._strategy_filters if p != pattern]
        self._strategy_filters.insert(0, (pattern, strategy))
        idents = [i for i in self._sensor if pattern.search(i)]
        for ident in idents:
            self._strategy_cache[ident] = strategy
        if self._client is None or not self._client.is_connected():
            return _done_future({})
        return asyncio.ensure_future(
            _echo_strategy(self._apply_strategies(idents), strategy_and_parms)
        )

    def drop_sampling_strategy(self, sensor_name: str) -> None:
        """Forget the memorised strategy of a sensor; its current strategy is unchanged."""
        self._strategy_cache.pop(escape_name(sensor_name), None)

    def set_sensor_listener(
        self, sensor_name: str, listener: Listener
    ) -> asyncio.Future[dict[str, Any]]:
        """Register ``listener(sensor, reading)`` on a sensor, even if it is not yet known.

        The registration persists across disconnect/reconnect and sensor re-creation.

        Returns
        -------
        asyncio.Future
            Resolves with ``{python_identifier: listener}`` if the sensor exists, else ``{}``.
        """
        ident = escape_name(sensor_name)
        self._listener_cache.setdefault(ident, []).append(listener)
        sensor = dict.get(self._sensor, ident)
        if sensor is None:
            return _done_future({})
        sensor.register_listener(listener, reading=True)
        return _done_future({ident: listener})

    async def _apply_strategies(self, idents: list[str]) -> dict[str, Any]:
        """Send the memorised strategies of `idents`, in bulk when the server allows."""
        client = self._client
        results: dict[str, Any] = {}
        if client is None or not idents or not client.is_connected():
            return results  # memorised strategies are applied on (re)connection
        # Keyed by (memorised strategy, its wire form): times are seconds in the cache and
        # milliseconds on the wire to a v4 server (see katcpx.peer_units).
        groups: dict[tuple[StrategyParams, tuple[str, ...]], list[str]] = {}
        major = self._major()
        for ident in idents:
            sensor = dict.get(self._sensor, ident)
            if sensor is not None:
                strategy = self._strategy_cache.get(ident, _NONE)
                try:
                    params = strategy_params_to_wire(strategy[0], strategy[1:], major, sensor.type)
                except ValueError as exc:
                    self._logger.error(
                        "%s: strategy %s of %s not sent: %s", self._name, strategy, ident, exc
                    )
                    results[ident] = str(exc)
                    continue
                groups.setdefault((strategy, (str(strategy[0]), *params)), []).append(ident)
        flags = client.protocol_flags
        bulk = flags is not None and flags.supports(ProtocolFlags.BULK_SET_SENSOR_SAMPLING)
        jobs: list[Awaitable[None]] = []
        for (strategy, wire), members in groups.items():
            if bulk and len(members) > 1:
                for chunk in _chunks([self._sensor[i].name for i in members]):
                    jobs.append(self._bulk_strategy(chunk, strategy, wire, results))
            else:
                for ident in members:
                    name = self._sensor[ident].name
                    jobs.append(self._one_strategy(name, strategy, wire, results))
        await asyncio.gather(*jobs)
        return results

    async def _one_strategy(
        self,
        name: str,
        strategy: StrategyParams,
        wire: tuple[str, ...],
        results: dict[str, Any],
    ) -> None:
        client = self._client
        assert client is not None
        try:
            await client.call("sensor-sampling", name, *wire, timeout=self._default_timeout)
        except RequestFailed as exc:
            self._logger.error(
                "%s: setting strategy %s of %s failed: %s", self._name, strategy, name, exc
            )
            results[escape_name(name)] = str(exc)
        else:
            results[escape_name(name)] = strategy

    async def _bulk_strategy(
        self,
        names: list[str],
        strategy: StrategyParams,
        wire: tuple[str, ...],
        results: dict[str, Any],
    ) -> None:
        client = self._client
        assert client is not None
        # The server sets up (and reports) every sensor before it replies: allow for that.
        timeout = None
        if self._default_timeout is not None:
            timeout = self._default_timeout + _BULK_SECONDS_PER_SENSOR * len(names)
        try:
            await client.call("sensor-sampling", ",".join(names), *wire, timeout=timeout)
        except (FailReplyError, InvalidReply) as exc:
            # One bad name fails the whole bulk request: find out which, one by one.
            self._logger.debug(
                "%s: bulk sensor-sampling failed (%s); retrying singly", self._name, exc
            )
            await asyncio.gather(*(self._one_strategy(n, strategy, wire, results) for n in names))
        except RequestFailed as exc:
            # Timed out or disconnected: retrying would only pile up; a reconnection
            # re-applies every memorised strategy anyway.
            self._logger.error("%s: bulk setting strategy %s failed: %s", self._name, strategy, exc)
            for name in names:
                results[escape_name(name)] = str(exc)
        else:
            for name in names:
                results[escape_name(name)] = strategy

    async def poll_sensor(self, sensor_name: str) -> None:
        """Fetch a sensor's value with ``?sensor-value`` and update the sensor.

        Raises
        ------
        KATCPSensorError
            If the request fails.
        """
        sensor = dict.get(self._sensor, escape_name(sensor_name))
        name = sensor.name if sensor is not None else sensor_name
        reply = await self._request("sensor-value", name)
        if not reply:
            raise KATCPSensorError(f"Error polling sensor {name}:\n{reply!r}")
        major = self._major()
        for inform in reply.informs:
            a = inform.arguments
            if len(a) >= 5:
                target = self._sensors_by_name.get(a[2].decode("utf-8", "replace"))
                if target is not None:
                    target.set_formatted(a[0], a[3], a[4], major)

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
        sensor = dict.get(self._sensor, escape_name(sensor_name))
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


def _done_future(value: Any) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_result(value)
    return fut


def _chunks(names: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    size = 0
    for name in names:
        if size + len(name) + 1 > _BULK_CHUNK_CHARS and chunks[-1]:
            chunks.append([])
            size = 0
        chunks[-1].append(name)
        size += len(name) + 1
    return chunks


async def list_sensors(
    parent: Any,
    sensors: dict[str, KATCPSensor],
    filter: str,
    strategy: bool,
    status: str,
    use_python_identifiers: bool,
    tuple: bool,
    refresh: bool,
    prefixed: bool = False,
) -> list[Any]:
    """Implement ``list_sensors`` over `sensors` (keyed by Python identifier).

    With `prefixed` (containers), reported names are ``<resource>.<sensor>`` except for
    aggregate sensors (``agg_*``).
    """
    filter_re = re.compile(filter)
    status_re = re.compile(status) if status else None
    found: list[Any] = []
    selected = [
        (ident, sensors[ident])
        for ident in sorted(sensors)
        if filter_re.search(ident if use_python_identifiers else sensors[ident].name)
        and not (strategy and sensors[ident].sampling_strategy == _NONE)
    ]
    if refresh:
        # Pipelined: one round trip for all of them rather than one each.
        await asyncio.gather(*(sensor.get_value() for _, sensor in selected))
    for ident, sensor in selected:
        if status_re is not None and not status_re.search(sensor.reading.status):
            continue
        name = sensor.name
        if prefixed and not name.startswith("agg_"):
            name = f"{sensor.parent_name}.{name}"
        if tuple:
            r = sensor.reading
            found.append(
                (
                    name,
                    r.value,
                    r.timestamp,
                    sensor.type,
                    sensor.units,
                    r.received_timestamp,
                    r.status,
                    sensor.sampling_strategy,
                )
            )
        else:
            found.append(
                SensorResultTuple(
                    object=sensor,
                    name=name,
                    python_identifier=ident,
                    description=sensor.description,
                    type=sensor.type,
                    units=sensor.units,
                    reading=sensor.reading,
                )
            )
    return found


async def _echo_strategy(applying: Awaitable[dict[str, Any]], passed: Any) -> dict[str, Any]:
    """The results of `applying`, each replaced by the strategy `passed` (katcp-python's)."""
    return {ident: passed for ident in await applying}


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
