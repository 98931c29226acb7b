"""``katcpx-web --redis``: serve browsers and REST from what ``katcpx-gateway`` writes.

:class:`RedisSource` implements :class:`~katcpx.web._source.SensorSource`, the interface the
websocket and REST handlers use, from Redis instead of KATCP connections (layout in
:mod:`katcpx.web._redis_keys`). Any number of instances can run on any number of machines:
subscriptions stay inside each instance, so browsers cost the devices nothing. Control
requests (``set``, REST calls, refreshes) go to the gateway through Redis, which runs them
on its own connection; with no gateway they fail at once with ``gateway_unavailable``.

Needs the ``redis`` extra (redis-py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .._client_regex import ClientRegexError, compile_client_regex
from ..resource import escape_name
from ._errors import BadFilter, refuse_shared_state
from ._freshness import freshness
from ._hub import (
    DEFAULT_STRATEGY,
    DeviceUnavailable,
    HubError,
    Sink,
    UnknownDevice,
    UnknownRequest,
    UnknownSensor,
    dumps,
)
from ._redis_control import WATCH_TIMEOUT, GatewayUnavailable, RedisUnavailable, control
from ._redis_history import READ_COUNT, RedisHistory
from ._redis_keys import Keys, redact_url
from ._sinks import SinkRegistry
from ._users import caller, principal_of

# GatewayUnavailable and RedisHistory live in their own modules; re-exported here.
__all__ = ["GatewayUnavailable", "RedisHistory", "RedisSource", "RedisUnavailable"]

log = logging.getLogger("katcpx.web")


@dataclass
class _Reading:
    value: Any
    status: str
    timestamp: float
    received_timestamp: float


_NO_READING = _Reading(None, "unknown", 0.0, 0.0)


class _Sensor:
    """A sensor as the handlers see it: metadata from Redis, reading from the live cache."""

    def __init__(self, source: RedisSource, device: str, meta: dict[str, Any]) -> None:
        self._source = source
        self.device = device
        self.name: str = meta["sensor"]
        self.type: str = meta.get("sensor_type", "")
        self.units: str = meta.get("units", "")
        self.description: str = meta.get("description", "")
        self.formatted_params = [str(p).encode() for p in meta.get("params", [])]

    @property
    def reading(self) -> _Reading:
        """The latest reading the gateway wrote."""
        text = self._source.value_text(self.device, self.name)
        if text is None:
            return _NO_READING
        msg = json.loads(text)
        return _Reading(msg["value"], msg["status"], msg["timestamp"], msg["received"])


@dataclass
class _Request:
    name: str
    description: str
    timeout_hint: float | None


class RedisSource(SinkRegistry):
    """Devices and sensors from Redis, as written by ``katcpx-gateway``.

    Parameters
    ----------
    url
        Redis URL (``redis://host:port/db``).
    prefix
        Key prefix the gateway uses.
    check_interval
        Seconds between checks of the gateway's heartbeat and the device list.
    request_timeout
        Default timeout (seconds) of requests whose caller and device give none.
    principal
        Identity sent with control requests made for no user (see :func:`.users.caller`),
        for the gateway's access policy; None: none.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "katcpx",
        check_interval: float = 0.5,
        request_timeout: float = 5.0,
        principal: Any = None,
    ) -> None:
        self.url = redact_url(url)  # for messages and logs: never the password
        self.keys = Keys(prefix)
        self.check_interval = check_interval
        self.request_timeout = request_timeout
        self.principal = principal
        #: Set with ``--users``: refuse control unless the gateway checks users too.
        self.require_users = False
        # Any: redis-py types replies as bytes-or-str unions; decode_responses is off here.
        # No socket timeout: control replies are awaited with BRPOP for as long as the
        # request may take; every call that must not hang has its own asyncio timeout.
        # One retry: a pooled connection idle since a Redis restart fails once and is then
        # replaced; without it each stale connection shows as an outage (a flap) later on.
        self.redis: Any = aioredis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=None, retry=Retry(NoBackoff(), 1)
        )
        self.history = RedisHistory(self.redis, self.keys)
        self.strategy: tuple[str, ...] = DEFAULT_STRATEGY
        #: ``"up"``, ``"down"`` (no heartbeat) or ``"redis unreachable"``.
        self.gateway = "down"
        self._devices: dict[str, dict[str, Any]] = {}
        self._meta: dict[str, dict[str, dict[str, Any]]] = {}
        self._requests: dict[str, dict[str, _Request]] = {}
        self._values: dict[tuple[str, str], str] = {}
        self._last_ids: dict[str, bytes] = {}
        self._subs: dict[tuple[str, str], dict[Sink, None]] = {}
        SinkRegistry.__init__(self)
        self._tasks: list[asyncio.Future[None]] = []
        self._loaded = asyncio.Event()
        self._error = ""
        self._tried = asyncio.Event()
        self._stopping = False

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start following Redis (in the background; an unreachable Redis is reported)."""
        self._tasks = [
            asyncio.ensure_future(self._watch()),
            asyncio.ensure_future(self._read()),
            asyncio.ensure_future(self._listen()),
        ]
        # Up to one first look at Redis, so what is served from the start is what Redis
        # holds (or a redis_unavailable error), not an empty site.
        try:
            await asyncio.wait_for(self._tried.wait(), WATCH_TIMEOUT + 2.0)
        except asyncio.TimeoutError:
            pass

    async def stop(self) -> None:
        """Stop following Redis and forget every subscription."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: redis-py may swallow a cancellation landing inside one of its calls;
            # the flag ends each loop at its next turn then.
            await asyncio.wait(self._tasks, timeout=self.check_interval + 2.0)
        self._tasks = []
        self._subs.clear()
        self._sinks.clear()
        await self.redis.aclose()

    def until_loaded(self, timeout: float | None = None) -> asyncio.Future[Any]:
        """Future resolving once the gateway's state has been read from Redis."""
        return asyncio.ensure_future(asyncio.wait_for(self._loaded.wait(), timeout))

    async def _watch(self) -> None:
        """Follow the gateway's heartbeat and the device list."""
        while not self._stopping:
            checks_users = False
            try:
                raw = await asyncio.wait_for(self.redis.get(self.keys.gateway), WATCH_TIMEOUT)
                state = "up" if raw is not None else "down"
                if raw is not None:
                    status = json.loads(raw)
                    self.strategy = tuple(status.get("strategy") or DEFAULT_STRATEGY)
                    checks_users = status.get("checks_users") is True
                devices = await self.redis.hgetall(self.keys.devices)
                for text in devices.values():
                    await self._device_update(json.loads(text), force_load=state != self.gateway)
                listed = {k.decode() for k in devices}
                for name in [n for n in self._devices if n not in listed]:
                    self._forget(name)  # the gateway no longer carries it
                self._loaded.set()
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                state = "redis unreachable"
                error = f"Redis at {self.url} is unreachable: {exc}"
                self._error = error
            else:
                error = f"no katcpx-gateway is writing to Redis at {self.url}"
            if state != self.gateway:
                self.gateway = state
                if state == "up":
                    log.info("katcpx-gateway at %s is up", self.url)
                    if self.require_users and not checks_users:
                        log.warning(
                            "the katcpx-gateway at %s checks no users (no --users): this "
                            "katcpx-web has --users, so it refuses every change until the "
                            "gateway is started with the same --users file",
                            self.url,
                        )
                    self._resend_snapshots()
                else:
                    log.warning("%s", error)
                    self._broadcast(
                        dumps({"type": "error", "code": "gateway_unavailable", "error": error})
                    )
                for name in self._devices:
                    self._broadcast(dumps(self.device_message(name)))
            self._tried.set()
            await asyncio.sleep(self.check_interval)

    def _forget(self, name: str) -> None:
        """Drop a device the gateway removed; subscribers are told it is gone."""
        self._devices.pop(name, None)
        self._meta.pop(name, None)
        self._requests.pop(name, None)
        self._last_ids.pop(name, None)
        for key in [k for k in self._values if k[0] == name]:
            del self._values[key]
        log.warning("device %s is no longer carried by the katcpx-gateway", name)
        self._broadcast(
            dumps(
                {
                    "type": "device",
                    "device": name,
                    "state": "removed",
                    "connected": False,
                    "synced": False,
                    "gateway": self.gateway,
                }
            )
        )

    def check_loaded(self) -> None:
        """Raise :class:`RedisUnavailable` while Redis has not been read since start.

        Raises
        ------
        RedisUnavailable
            So that an empty device list is not mistaken for a site with no devices.
        """
        if not self._loaded.is_set():
            raise RedisUnavailable(self._error or f"Redis at {self.url} has not been read yet")

    async def _device_update(self, msg: dict[str, Any], force_load: bool = False) -> None:
        name = msg.get("device")
        if not isinstance(name, str):
            return
        old = self._devices.get(name)
        self._devices[name] = msg
        if old is None or force_load or (msg.get("synced") and not old.get("synced")):
            await self._load_device(name)
        if old != msg and self.gateway == "up":
            self._broadcast(dumps(self.device_message(name)))

    async def _load_device(self, name: str) -> None:
        """Read a device's interface and current values; tell subscribers of changed metas."""
        last = await self.redis.xrevrange(self.keys.readings(name), count=1)
        sensors = await self.redis.hgetall(self.keys.sensors(name))
        requests = await self.redis.hgetall(self.keys.requests(name))
        values = await self.redis.hgetall(self.keys.values(name))
        self._last_ids.setdefault(name, last[0][0] if last else b"0-0")
        old_meta = self._meta.get(name, {})
        self._meta[name] = {k.decode(): json.loads(v) for k, v in sensors.items()}
        self._requests[name] = {}
        for k, v in requests.items():
            info = json.loads(v)
            self._requests[name][k.decode()] = _Request(
                k.decode(), info.get("description", ""), info.get("timeout_hint")
            )
        for k, v in values.items():
            self._values[(name, k.decode())] = v.decode()
        for (device, sensor), sinks in self._subs.items():
            meta = self._meta[name].get(sensor)
            if device == name and meta is not None and meta != old_meta.get(sensor):
                for text in self.snapshot(device, sensor):
                    for sink in list(sinks):
                        sink.push(text)

    async def _read(self) -> None:
        """Follow every device stream; push each reading to its subscribers."""
        while not self._stopping:
            streams = {self.keys.readings(d): self._last_ids[d] for d in self._last_ids}
            if not streams:
                await asyncio.sleep(self.check_interval)
                continue
            by_stream = {self.keys.readings(d).encode(): d for d in self._last_ids}
            try:
                result = await asyncio.wait_for(
                    self.redis.xread(
                        streams, count=READ_COUNT, block=int(self.check_interval * 1000)
                    ),
                    self.check_interval + WATCH_TIMEOUT,
                )
            except (RedisError, OSError, asyncio.TimeoutError):
                await asyncio.sleep(self.check_interval)  # _watch reports it
                continue
            for stream, entries in result or ():
                device = by_stream[stream]
                for entry_id, fields in entries:
                    sensor = fields[b"s"].decode()
                    text = fields[b"j"].decode()
                    self._values[(device, sensor)] = text
                    sinks = self._subs.get((device, sensor))
                    if sinks:
                        key = ("update", device, sensor)
                        for sink in list(sinks):
                            sink.push(text, key)
                    self._last_ids[device] = entry_id

    async def _listen(self) -> None:
        """Follow the gateway's published device states and interface changes."""
        while not self._stopping:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.keys.events)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    msg = json.loads(message["data"])
                    if msg.get("type") == "device":
                        await self._device_update(msg)
                    elif msg.get("type") == "interface-changed" and msg.get("device"):
                        await self._load_device(msg["device"])
            except (RedisError, OSError, ValueError):
                await asyncio.sleep(self.check_interval)
            finally:
                await pubsub.aclose()

    def _broadcast(self, text: str) -> None:
        for sink in list(self._sinks):
            sink.push(text)

    def _resend_snapshots(self) -> None:
        for (device, sensor), sinks in self._subs.items():
            for text in self.snapshot(device, sensor):
                for sink in list(sinks):
                    sink.push(text)

    # -- devices, sensors, requests --------------------------------------------------------

    @property
    def device_names(self) -> list[str]:
        """Names of the devices the gateway carries."""
        return list(self._devices)

    def resource(self, device: str) -> dict[str, Any]:
        """The device's last ``device`` message from the gateway.

        Raises
        ------
        UnknownDevice
        """
        try:
            return self._devices[device]
        except (KeyError, TypeError):
            self.check_loaded()
            raise UnknownDevice(f"unknown device {device!r}") from None

    def device_message(self, device: str) -> dict[str, Any]:
        """The ``device`` message; with no gateway the device shows disconnected."""
        msg = dict(self.resource(device), gateway=self.gateway)
        if self.gateway != "up":
            msg.update(state="disconnected", connected=False, synced=False)
        return msg

    def value_text(self, device: str, sensor: str) -> str | None:
        """The latest ``update`` message (JSON) of a sensor, if any."""
        return self._values.get((device, sensor))

    def sampled_since(self, device: str, sensor: str) -> float | None:
        """Since when the gateway samples `sensor` for everyone (None: not now).

        The gateway keeps one strategy on every sensor it carries, so while the gateway is
        up and the device synced, each reading in Redis is the latest (0.0: since ever).
        """
        return 0.0 if self._synced(device) else None

    def freshness(
        self, device: str, sensor: str, received: float, connected: bool
    ) -> dict[str, Any]:
        """``age`` and ``stale`` of a sensor's latest reading (see :mod:`.freshness`)."""
        return freshness(received, self.sampled_since(device, sensor), connected)

    def _synced(self, device: str) -> bool:
        return self.gateway == "up" and bool(self.resource(device).get("synced"))

    def _meta_of(self, device: str, name: Any) -> dict[str, Any] | None:
        metas = self._meta.get(device, {})
        if not isinstance(name, str):
            return None
        meta = metas.get(name)
        if meta is None:
            ident = escape_name(name)
            meta = next((m for n, m in metas.items() if escape_name(n) == ident), None)
        return meta

    def sensor(self, device: str, name: str) -> _Sensor:
        """The sensor `name` (KATCP name or Python identifier) of `device`.

        Raises
        ------
        UnknownDevice, UnknownSensor, DeviceUnavailable
        """
        self.resource(device)
        meta = self._meta_of(device, name)
        if meta is None:
            if not self._synced(device):
                raise DeviceUnavailable(f"device {device!r} is not synced (gateway {self.gateway})")
            raise UnknownSensor(
                f"device {device!r} has no sensor {name!r} (carried by the gateway)"
            )
        return _Sensor(self, device, meta)

    def sensors(self, device: str, filter: str = "") -> list[_Sensor]:
        """Sensors of `device` whose names match regular expression `filter`.

        Raises
        ------
        UnknownDevice, HubError
        """
        self.resource(device)
        try:
            pattern = compile_client_regex(filter)  # from a browser: RE2, linear time
        except ClientRegexError as exc:
            raise BadFilter(f"bad filter regular expression {filter}: {exc}") from None
        metas = self._meta.get(device, {})
        return [_Sensor(self, device, metas[n]) for n in sorted(metas) if pattern.search(n)]

    def requests(self, device: str) -> list[_Request]:
        """Requests of `device`, sorted by name."""
        self.resource(device)
        reqs = self._requests.get(device, {})
        return [reqs[n] for n in sorted(reqs)]

    def request(self, device: str, name: str) -> _Request:
        """The request `name` of `device`.

        Raises
        ------
        UnknownDevice, UnknownRequest, DeviceUnavailable
        """
        self.resource(device)
        reqs = self._requests.get(device, {})
        found = reqs.get(name) if isinstance(name, str) else None
        if found is None and isinstance(name, str):
            ident = escape_name(name)
            found = next((r for n, r in reqs.items() if escape_name(n) == ident), None)
        if found is None:
            if not self._synced(device):
                raise DeviceUnavailable(f"device {device!r} is not synced (gateway {self.gateway})")
            raise UnknownRequest(f"device {device!r} has no request {name!r}")
        return found

    # -- sinks and subscriptions -------------------------------------------------------------

    def subscriber_count(self, device: str, sensor: str) -> int:
        """How many sinks of this instance are subscribed to a sensor."""
        return len(self._subs.get((device, sensor), ()))

    def subscribe(self, sink: Sink, device: str, sensor: str, safely: bool = False) -> str:
        """Subscribe `sink` to a sensor; the device is not asked anything (the gateway
        samples every sensor it carries).

        Returns
        -------
        str
            ``"subscribed"``, ``"already_subscribed"`` or ``"pending"`` (not synced yet).

        Raises
        ------
        UnknownDevice, UnknownSensor, DeviceUnavailable, HubError
        """
        if not isinstance(sensor, str) or not sensor:
            raise HubError("sensor name must be a non-empty string")
        self.resource(device)
        meta = self._meta_of(device, sensor)
        synced = self._synced(device)
        if meta is None:
            if synced:
                raise UnknownSensor(f"device {device!r} has no sensor {sensor!r}")
            if safely:
                raise DeviceUnavailable(f"device {device!r} is not synced")
        elif safely and not synced:
            raise DeviceUnavailable(f"device {device!r} is not synced")
        key = (device, meta["sensor"] if meta is not None else sensor)
        sinks = self._subs.setdefault(key, {})
        if sink in sinks:
            return "already_subscribed"
        sinks[sink] = None
        self._sinks.setdefault(sink, set()).add(key)
        return "subscribed" if meta is not None and synced else "pending"

    def snapshot(self, device: str, sensor: str) -> list[str]:
        """The ``meta`` and latest ``update`` of a sensor, for a new subscriber."""
        meta = self._meta_of(device, sensor)
        if meta is None:
            return []
        out = [dumps(meta)]
        text = self._values.get((device, meta["sensor"]))
        if text is not None:
            out.append(text)
        return out

    def unsubscribe(self, sink: Sink, device: str, sensor: str) -> bool:
        """Unsubscribe `sink` from a sensor; False if it was not subscribed."""
        if not isinstance(sensor, str):
            return False
        meta = self._meta_of(device, sensor)
        key = (device, meta["sensor"] if meta is not None else sensor)
        sinks = self._subs.get(key)
        if sinks is None or sink not in sinks:
            return False
        del sinks[sink]
        if not sinks:
            del self._subs[key]
        self._sinks.get(sink, set()).discard(key)
        return True

    # -- control requests, through the gateway ----------------------------------------------

    async def _control(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a control request to the gateway for the current web user (if any).

        Raises
        ------
        GatewayUnavailable, RemoteError
            See :func:`.redis_control.control`.
        """
        # The web user the request is made for (--users): their name and the token they
        # presented, which the gateway checks against its own users file.
        principal = principal_of(caller()) or self.principal
        return await control(
            self.redis, self.keys, self.url, msg, timeout, principal, self.require_users
        )

    async def read(self, device: str, sensor: str) -> dict[str, Any]:
        """Have the gateway read a sensor afresh (``?sensor-value``); its ``update`` message.

        Raises
        ------
        UnknownDevice, UnknownSensor, DeviceUnavailable, GatewayUnavailable
        """
        name = self.sensor(device, sensor).name
        msg: dict[str, Any] = {"action": "read", "device": device, "sensor": name}
        result = await self._control(msg, self.request_timeout)
        text = self._values[(device, name)] = dumps(result)
        # Subscribers get the fresh reading now, before the caller's summary (as without
        # --redis), not whenever the stream brings it.
        for sink in list(self._subs.get((device, name), ())):
            sink.push(text, ("update", device, name))
        return result

    async def call(
        self, device: str, request: str, args: Sequence[Any] = (), timeout: float | None = None
    ) -> dict[str, Any]:
        """Have the gateway issue a request and return its result (see ``DeviceHub.call``).

        Raises
        ------
        UnknownDevice, UnknownRequest, DeviceUnavailable, GatewayUnavailable, HubError
        SharedConnectionRequest
            As ``DeviceHub.call`` (the gateway refuses them too).
        """
        refuse_shared_state(request, list(args))
        obj = self.request(device, request)
        for arg in args:
            if not (arg is None or isinstance(arg, (str, int, float, bool))):
                raise HubError(f"request arguments must be scalars, not {type(arg).__name__}")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise HubError("timeout must be a positive number")
        wait = float(timeout or obj.timeout_hint or self.request_timeout)
        msg = {
            "action": "call",
            "device": device,
            "request": obj.name,
            "args": list(args),
            "timeout": timeout,
        }
        started = time.monotonic()
        result = await self._control(msg, wait)
        result["elapsed"] = round(time.monotonic() - started, 6)
        return result
