"""The device hub: one KATCP client resource per device, shared by every web client.

Browsers (websocket connections, REST calls) never talk KATCP themselves. They ask the
:class:`DeviceHub`, which keeps one :class:`~katcpx.resource.KATCPClientResource` per device
and turns sensor subscriptions into KATCP sampling strategies. Subscriptions are reference
counted: however many browsers watch a sensor, the device sees one ``?sensor-sampling``
when the first arrives and one ``?sensor-sampling <name> none`` when the last leaves.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._anyloop import future_of
from .._client_regex import ClientPattern, ClientRegexError, compile_client_regex
from ..resource import KATCPClientResource, KATCPRequest, KATCPSensor, escape_name
from ._devices import DeviceSpec, parse_device_spec
from ._errors import (
    BadFilter,
    DeviceUnavailable,
    HubError,
    UnknownDevice,
    UnknownRequest,
    UnknownSensor,
    refuse_shared_state,
)
from ._freshness import freshness
from ._json import dumps, jsonable, sensor_meta
from ._request_call import issue
from ._ring import RingHistory
from ._sinks import SinkRegistry

__all__ = [
    "DEFAULT_STRATEGY",
    "DeviceHub",
    "DeviceSpec",
    "DeviceUnavailable",
    "BadFilter",
    "HubError",
    "Sink",
    "UnknownDevice",
    "UnknownRequest",
    "UnknownSensor",
    "dumps",
    "jsonable",
    "parse_device_spec",
    "sensor_meta",
]

log = logging.getLogger("katcp.web")

#: Sampling strategy of a subscription unless the hub is given another.
DEFAULT_STRATEGY: tuple[str, ...] = ("event",)


#: Seconds between looks at a disconnected device's link error.
LINK_ERROR_CHECK = 0.5


class Sink(Protocol):
    """Something that receives JSON messages, e.g. a websocket connection."""

    def push(self, text: str, key: Hashable | None = None) -> None:
        """Queue one JSON text; a newer text with the same non-None `key` may replace it."""


def _has_reading(sensor: KATCPSensor) -> bool:
    return sensor.reading.received_timestamp > 0


@dataclass
class _Subscription:
    device: str
    sensor: str
    sinks: dict[Sink, None]
    obj: KATCPSensor | None = None
    error: str | None = None
    listener: Any = None
    #: Subscribers still waiting for the sensor's meta (subscribed while not synced).
    waiting: dict[Sink, None] = field(default_factory=dict)
    #: When the sampling strategy was requested: later readings are current (freshness.py).
    sampled_since: float | None = None


class DeviceHub(SinkRegistry):
    """KATCP client resources for a set of devices, shared by all web clients.

    Everything runs on one asyncio loop, the one :meth:`start` is awaited on; call the
    methods from that loop.

    Parameters
    ----------
    devices
        The devices to serve; names must be unique.
    strategy
        KATCP sampling strategy of subscriptions: ``("event",)`` (the default) or, to
        limit the update rate, e.g. ``("event-rate", 0.1, 60)``.
    request_timeout
        Default timeout in seconds of requests for which neither the caller nor the
        device gives one.
    auto_reconnect_delay
        Seconds before the first reconnection attempt after a device drops.
    ssl_context
        TLS context for the links to the devices (see :mod:`katcpx.tls`); plain TCP when None.
    logger
        Where the devices' connections log (default ``katcpx.web``).
    history_size
        Readings of each subscribed sensor kept in :attr:`history` (0: none).
    """

    def __init__(
        self,
        devices: Iterable[DeviceSpec],
        strategy: Sequence[str | float] = DEFAULT_STRATEGY,
        request_timeout: float = 5.0,
        auto_reconnect_delay: float = 0.5,
        ssl_context: ssl.SSLContext | None = None,
        logger: logging.Logger = log,
        history_size: int = 1000,
    ) -> None:
        self.specs: dict[str, DeviceSpec] = {}
        for spec in devices:
            if spec.name in self.specs:
                raise ValueError(f"device name {spec.name!r} given twice")
            self.specs[spec.name] = spec
        self.strategy: tuple[str, ...] = tuple(str(p) for p in strategy)
        if not self.strategy:
            raise ValueError("empty sampling strategy")
        self.request_timeout = float(request_timeout)
        #: Whether :attr:`request_timeout` was chosen by the user: it then wins over the
        #: devices' request timeout hints, which otherwise take precedence.
        self.timeout_wins = False
        #: Recent readings of subscribed sensors, for the history endpoint.
        self.history = RingHistory(history_size)
        self._resources: dict[str, KATCPClientResource] = {}
        for spec in self.specs.values():
            self._resources[spec.name] = KATCPClientResource(
                {
                    "name": spec.name,
                    "address": (spec.host, spec.port),
                    "description": spec.description,
                    "controlled": True,
                    "auto_reconnect": True,
                    "auto_reconnect_delay": auto_reconnect_delay,
                    "timeout": self.request_timeout,
                    "ssl_context": ssl_context,
                },
                logger=logger,
            )
        self.tls = ssl_context is not None
        self._warned: dict[str, str] = {}
        SinkRegistry.__init__(self)
        self._subs: dict[tuple[str, str], _Subscription] = {}
        self._watchers: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self._started = False

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to every device (in the background) and start watching their states."""
        if self._started:
            raise RuntimeError("hub already started")
        self._started = True
        for name, res in self._resources.items():
            res.start()
            self._watchers.append(asyncio.ensure_future(self._watch(name, res)))

    async def stop(self) -> None:
        """Disconnect from every device and forget all subscriptions."""
        for task in self._watchers:
            task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._watchers, *self._tasks, return_exceptions=True)
        self._watchers.clear()
        for res in self._resources.values():
            res.stop()
        await asyncio.gather(
            *(res.until_stopped(2.0) for res in self._resources.values()), return_exceptions=True
        )
        self._subs.clear()
        self._sinks.clear()

    def until_synced(self, timeout: float | None = None) -> asyncio.Future[Any]:
        """Future resolving when every device is synced (fails with TimeoutError)."""
        resources = list(self._resources.values())
        return future_of(
            lambda: asyncio.wait_for(
                asyncio.gather(*(r.until_synced() for r in resources)), timeout
            )
        )

    def _spawn(self, coro: Any) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watch(self, name: str, res: KATCPClientResource) -> None:
        """Push every state change of device `name` to all sinks as it happens."""
        last = res.state
        while True:
            others = [s for s in ("disconnected", "syncing", "synced") if s != last]
            waits = [res.until_state(s) for s in others]
            try:
                # A refused link (e.g. "#disconnect This port requires TLS") stays
                # "disconnected": look at its error now and then, not only on state changes.
                await asyncio.wait(
                    waits, timeout=LINK_ERROR_CHECK, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for w in waits:
                    w.cancel()
            state = res.state
            if state == last:
                if state != "disconnected" or not self._warn_link_error(name, res):
                    continue
            last = state
            # Said in the log, so whoever started the bridge knows when a device can be used.
            log.info("device %s is %s", name, state)
            if state == "synced":
                self._device_synced(name, res)
            elif state == "disconnected":
                self._warn_link_error(name, res)
            text = dumps(self.device_message(name))
            for sink in list(self._sinks):
                sink.push(text)

    def _warn_link_error(self, name: str, res: KATCPClientResource) -> bool:
        """Log, once per distinct text, why device `name`'s link went down, with the fix.

        Returns whether the text is new.
        """
        error = res.last_connect_error
        if not error or self._warned.get(name) == error:
            return False
        self._warned[name] = error
        hint = ""
        if "TLS" in error and not self.tls:
            hint = "; give katcpx-web --tls-ca FILE (the CA of the devices' certificates)"
        log.warning("device %s: %s%s", name, error, hint)
        return True

    def _device_synced(self, name: str, res: KATCPClientResource) -> None:
        """Bind subscriptions to the device's (possibly new) sensor objects."""
        for (device, sensor_name), sub in list(self._subs.items()):
            if device != name:
                continue
            obj = self._find_sensor(res, sensor_name)
            if obj is None:
                sub.waiting.update(sub.sinks)
                self._broadcast_error(
                    sub, f"device {name!r} has no sensor {sensor_name!r}; subscription kept"
                )
            elif obj is not sub.obj or sub.waiting:
                self._bind(sub, obj)

    def _bind(self, sub: _Subscription, obj: KATCPSensor) -> None:
        """Make `obj` the subscription's sensor; send its meta to whoever lacks it."""
        listener = self._listener_for(sub)
        if obj is not sub.obj:
            if sub.obj is not None:
                sub.obj.unregister_listener(listener)
            obj.register_listener(listener, reading=True)
            sub.obj = obj
            targets = list(sub.sinks)  # the description may have changed
        else:
            targets = [s for s in sub.waiting if s in sub.sinks]
        sub.waiting.clear()
        text = dumps(sensor_meta(sub.device, obj))
        for sink in targets:
            sink.push(text)

    # -- device information -------------------------------------------------------------------

    @property
    def device_names(self) -> list[str]:
        """Names of the devices, in configuration order."""
        return list(self.specs)

    def resource(self, device: str) -> KATCPClientResource:
        """The client resource of `device`.

        Raises
        ------
        UnknownDevice
            If there is no such device.
        """
        try:
            return self._resources[device]
        except (KeyError, TypeError):
            raise UnknownDevice(f"unknown device {device!r}") from None

    def device_message(self, device: str) -> dict[str, Any]:
        """The ``device`` message: name, address, state and counts of sensors and requests."""
        res = self.resource(device)
        spec = self.specs[device]
        return {
            "type": "device",
            "device": device,
            "address": spec.address,
            "description": spec.description,
            "state": res.state,
            "connected": res.state != "disconnected",
            "synced": res.synced,
            # Why the device is not connected (e.g. its "#disconnect" reason), else None.
            "error": None if res.synced else res.last_connect_error,
            "sensors": len(res.sensor),
            "requests": len(res.req),
        }

    @staticmethod
    def _find_sensor(res: KATCPClientResource, name: str) -> KATCPSensor | None:
        obj = res.sensor.get(escape_name(name))
        return obj if isinstance(obj, KATCPSensor) else None

    def sensor(self, device: str, name: str) -> KATCPSensor:
        """The sensor `name` (KATCP name or Python identifier) of `device`.

        Raises
        ------
        UnknownDevice, UnknownSensor
        """
        res = self.resource(device)
        obj = self._find_sensor(res, name) if isinstance(name, str) else None
        if obj is None:
            if not res.synced:
                raise DeviceUnavailable(f"device {device!r} is {res.state}")
            raise UnknownSensor(f"device {device!r} has no sensor {name!r}")
        return obj

    def sensors(self, device: str, filter: str = "") -> list[KATCPSensor]:
        """Sensors of `device` whose KATCP name matches regular expression `filter`.

        Raises
        ------
        HubError
            If `filter` is not a valid regular expression.
        """
        pattern = _compile(filter)
        res = self.resource(device)
        found = [s for s in res.sensor.values() if pattern.search(s.name)]
        return sorted(found, key=lambda s: s.name)

    def requests(self, device: str) -> list[KATCPRequest]:
        """Requests of `device` (from its ``?help``), sorted by name."""
        res = self.resource(device)
        return sorted(res.req.values(), key=lambda r: r.name)

    def request(self, device: str, name: str) -> KATCPRequest:
        """The request `name` of `device`.

        Raises
        ------
        UnknownDevice, UnknownRequest, DeviceUnavailable
        """
        res = self.resource(device)
        obj = res.req.get(escape_name(name)) if isinstance(name, str) else None
        if not isinstance(obj, KATCPRequest):
            if not res.synced:
                raise DeviceUnavailable(f"device {device!r} is {res.state}")
            raise UnknownRequest(f"device {device!r} has no request {name!r}")
        return obj

    def reading_message(self, device: str, sensor: KATCPSensor) -> dict[str, Any]:
        """The ``update`` message of the sensor's latest reading."""
        reading = sensor.reading
        res = self._resources.get(device)
        connected = res is not None and res.state != "disconnected"
        return {
            "type": "update",
            "device": device,
            "sensor": sensor.name,
            "value": jsonable(reading.value),
            "status": reading.status,
            "timestamp": reading.timestamp,
            "received": reading.received_timestamp,
            "connected": connected,
            **self.freshness(device, sensor.name, reading.received_timestamp, connected),
        }

    def freshness(
        self, device: str, sensor: str, received: float, connected: bool
    ) -> dict[str, Any]:
        """``age`` and ``stale`` of a sensor's cached reading (see :mod:`.freshness`)."""
        return freshness(received, self.sampled_since(device, sensor), connected)

    def sampled_since(self, device: str, sensor: str) -> float | None:
        """When the hub's sampling of a sensor was requested (None: it is not sampled)."""
        sub = self._subs.get((device, sensor))
        return None if sub is None or sub.error else sub.sampled_since

    # -- sinks and subscriptions ----------------------------------------------------------------

    def subscriber_count(self, device: str, sensor: str) -> int:
        """How many sinks are subscribed to a sensor."""
        sub = self._subs.get((device, sensor))
        return 0 if sub is None else len(sub.sinks)

    def subscribe(self, sink: Sink, device: str, sensor: str, safely: bool = False) -> str:
        """Subscribe `sink` to a sensor.

        Parameters
        ----------
        sink
            The subscriber; it must be attached.
        device, sensor
            Device name and KATCP sensor name (a Python identifier also works).
        safely
            Refuse (with :class:`DeviceUnavailable`) when the device is not synced, rather
            than keeping the subscription pending until it is.

        Returns
        -------
        str
            ``"subscribed"``, ``"already_subscribed"`` or ``"pending"`` (the device is not
            synced yet; the sensor is subscribed when it is).

        Raises
        ------
        UnknownDevice, UnknownSensor, DeviceUnavailable, HubError
        """
        if not isinstance(sensor, str) or not sensor:
            raise HubError("sensor name must be a non-empty string")
        res = self.resource(device)
        obj = self._find_sensor(res, sensor)
        if obj is None:
            if res.synced:
                raise UnknownSensor(f"device {device!r} has no sensor {sensor!r}")
            if safely:
                raise DeviceUnavailable(f"device {device!r} is {res.state}")
        elif safely and not res.synced:
            raise DeviceUnavailable(f"device {device!r} is {res.state}")
        name = obj.name if obj is not None else sensor
        key = (device, name)
        mine = self._sinks.setdefault(sink, set())
        sub = self._subs.get(key)
        if sub is not None and sink in sub.sinks:
            return "already_subscribed"
        mine.add(key)
        if sub is None:
            sub = self._subs[key] = _Subscription(device, name, {sink: None}, obj)
            if obj is not None:
                obj.register_listener(self._listener_for(sub), reading=True)
            self._spawn(self._set_strategy(sub, res))
        else:
            sub.sinks[sink] = None
        if not res.synced:
            sub.waiting[sink] = None
            return "pending"
        return "subscribed"

    def snapshot(self, device: str, sensor: str) -> list[str]:
        """Messages a new subscriber of a sensor gets: its ``meta`` and latest ``update``.

        The update is left out while the sensor has no reading yet: the sampling strategy
        will send one to every subscriber.
        """
        obj = self._find_sensor(self.resource(device), sensor)
        sub = self._subs.get((device, obj.name if obj is not None else sensor))
        if sub is None or sub.obj is None:
            return []
        out = [dumps(sensor_meta(device, sub.obj))]
        if _has_reading(sub.obj):
            out.append(dumps(self.reading_message(device, sub.obj)))
        return out

    def unsubscribe(self, sink: Sink, device: str, sensor: str) -> bool:
        """Unsubscribe `sink` from a sensor; False if it was not subscribed.

        The device is told to stop sampling when the last subscriber leaves.
        """
        if not isinstance(sensor, str):
            return False
        res = self.resource(device)
        obj = self._find_sensor(res, sensor)
        key = (device, obj.name if obj is not None else sensor)
        sub = self._subs.get(key)
        if sub is None or sink not in sub.sinks:
            return False
        del sub.sinks[sink]
        sub.waiting.pop(sink, None)
        self._sinks.get(sink, set()).discard(key)
        if not sub.sinks:
            del self._subs[key]
            if sub.obj is not None:
                sub.obj.unregister_listener(self._listener_for(sub))
            self._spawn(self._clear_strategy(sub.sensor, res))
        return True

    def _listener_for(self, sub: _Subscription) -> Any:
        # One listener per subscription, so (un)registering it again is harmless.
        if sub.listener is None:

            def listener(sensor: KATCPSensor, reading: Any) -> None:
                if self._subs.get((sub.device, sub.sensor)) is not sub:
                    return
                if sensor is not sub.obj or sub.waiting:
                    # First reading since (re)connecting: the meta goes out before it.
                    self._bind(sub, sensor)
                self.history.record(sub.device, sub.sensor, reading)
                # Serialised once for all subscribers; the key lets a slow socket keep
                # only the newest reading of each sensor.
                text = dumps(self.reading_message(sub.device, sensor))
                key = ("update", sub.device, sub.sensor)
                for sink in list(sub.sinks):
                    sink.push(text, key)

            sub.listener = listener
        return sub.listener

    async def _set_strategy(self, sub: _Subscription, res: KATCPClientResource) -> None:
        sub.sampled_since = time.time()
        ok, outcome = await res.set_sensor_sampling_strategy(sub.sensor, self.strategy)
        if not ok and self._subs.get((sub.device, sub.sensor)) is sub:
            sub.error = outcome
            self._broadcast_error(sub, f"sampling {sub.sensor!r} failed: {outcome}")

    async def _clear_strategy(self, sensor: str, res: KATCPClientResource) -> None:
        if (res.name, sensor) in self._subs:
            return  # re-subscribed meanwhile
        res.drop_sampling_strategy(sensor)
        if self._find_sensor(res, sensor) is None or not res.is_connected():
            return  # the next connection starts with no strategies anyway
        try:
            await res.set_sampling_strategy(sensor, ("none",))
        finally:
            if (res.name, sensor) not in self._subs:
                res.drop_sampling_strategy(sensor)

    def _broadcast_error(self, sub: _Subscription, error: str) -> None:
        text = dumps(
            {
                "type": "error",
                "code": "sampling_failed",
                "device": sub.device,
                "sensor": sub.sensor,
                "error": error,
            }
        )
        for sink in list(sub.sinks):
            sink.push(text)

    # -- reads and requests ----------------------------------------------------------------------

    async def read(self, device: str, sensor: str) -> dict[str, Any]:
        """Fetch a fresh reading with ``?sensor-value``; return its ``update`` message.

        Raises
        ------
        UnknownDevice, UnknownSensor, DeviceUnavailable
        """
        obj = self.sensor(device, sensor)
        res = self.resource(device)
        if not res.is_connected():
            raise DeviceUnavailable(f"device {device!r} is {res.state}")
        try:
            await res.poll_sensor(obj.name)
        except Exception as exc:
            raise DeviceUnavailable(f"reading {obj.name!r} of {device!r} failed: {exc}") from exc
        return self.reading_message(device, obj)

    async def call(
        self, device: str, request: str, args: Sequence[Any] = (), timeout: float | None = None
    ) -> dict[str, Any]:
        """Issue a KATCP request and wait for its reply.

        Parameters
        ----------
        device, request
            Device name and KATCP request name.
        args
            Request arguments (str, int, float, bool or None).
        timeout
            Seconds to wait; None uses the device's hint for the request, else the hub's
            default (the hub's always, when :attr:`timeout_wins`).

        Returns
        -------
        dict
            ``ok`` (bool), ``status`` (``"ok"``, ``"fail"``, ``"invalid"``, ``"timeout"``
            or ``"error"``), ``reply`` (the reply arguments after the status), ``informs``
            (each a list of arguments), ``elapsed`` (seconds) and, unless ok, ``error``.

        Raises
        ------
        UnknownDevice, UnknownRequest, DeviceUnavailable, HubError
        SharedConnectionRequest
            For ``?sensor-sampling NAME STRATEGY`` and ``?sensor-sampling-clear``.
        """
        refuse_shared_state(request, list(args))
        obj = self.request(device, request)
        res = self.resource(device)
        if not res.is_connected():
            raise DeviceUnavailable(f"device {device!r} is {res.state}")
        return await issue(device, obj, args, timeout, self.request_timeout, not self.timeout_wins)


def _compile(pattern: str) -> ClientPattern:
    # Filters come from browsers: RE2 runs them in linear time.
    try:
        return compile_client_regex(pattern)
    except ClientRegexError as exc:
        raise BadFilter(f"bad filter regular expression {pattern}: {exc}") from None
