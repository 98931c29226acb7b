"""The gateway: one KATCP subscription per sensor, written to Redis for any number of readers.

It keeps a :class:`~katcpx.web._hub.DeviceHub` (one client resource per device, as
``katcpx-web`` has), sets one sampling strategy on every sensor it carries when a device
syncs (in bulk where the device allows), and turns every reading into an ``update`` message
written to Redis by a :class:`~katcpx.gateway._writer.RedisWriter`. Consumers never reach
the devices: however many web instances and browsers there are, each device sees the
gateway's one connection and one strategy per sensor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from redis.exceptions import RedisError

from ..resource import KATCPSensor, escape_name
from ..web._hub import DEFAULT_STRATEGY, DeviceHub, DeviceSpec, sensor_meta
from ..web._redis_keys import (
    GATEWAY_TTL,
    HEARTBEAT_INTERVAL,
    Keys,
    redact_url,
    update_text,
    value_json,
)
from ._control import ControlPolicy, ControlServer
from ._writer import RedisWriter, connect

__all__ = ["Gateway", "GatewayConflict"]

log = logging.getLogger("katcpx.gateway")

#: KEYS: heartbeat. ARGV: this gateway's id. Deletes the heartbeat only if it is this
#: gateway's (a second gateway stopping must not silence the one still running).
DEL_OWN_HEARTBEAT = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, status = pcall(cjson.decode, raw)
if ok and type(status) == 'table' and status['id'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: KEYS: devices hash, events channel. ARGV: key prefix, then the carried devices. Removes
#: every other device (a gateway restarted without it): its entry, its keys (named as
#: :class:`~katcpx.web._redis_keys.Keys` names them) and a published ``device-removed``.
DROP_OTHER_DEVICES = """
local keep = {}
for i = 2, #ARGV do keep[ARGV[i]] = true end
local gone = 0
for _, d in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not keep[d] then
    redis.call('HDEL', KEYS[1], d)
    local p = ARGV[1] .. ':dev:' .. d
    redis.call('DEL', p .. ':values', p .. ':sensors', p .. ':requests', p .. ':readings')
    redis.call('PUBLISH', KEYS[2], cjson.encode({type = 'device-removed', device = d}))
    gone = gone + 1
  end
end
return gone
"""


class GatewayConflict(RuntimeError):
    """Another live gateway's heartbeat is in the Redis database this one would write to."""


class _StateSink:
    """Receives the hub's ``device`` messages (state changes) for the gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def push(self, text: str, key: Hashable | None = None) -> None:
        msg = json.loads(text)
        if msg.get("type") == "device":
            self._gateway.device_changed(msg)


class Gateway:
    """Carry the sensors of a set of devices into Redis and run control requests.

    Parameters
    ----------
    devices
        The devices, as ``katcpx-web`` names them.
    redis_url
        Where Redis is (``redis://host:port/db``).
    prefix
        First part of every key (see :mod:`katcpx.web._redis_keys`).
    strategy
        Sampling strategy set on every carried sensor.
    sensors
        Regular expression searched in sensor names: only matching sensors are carried.
    maxlen
        Approximate length bound of each device's stream (0: none).
    max_age
        Seconds of readings each stream keeps (None: no age bound).
    buffer_limit
        Most readings held while Redis is unreachable (oldest dropped past it, counted).
    request_timeout
        Default timeout (seconds) of control requests.
    policy
        Access policy for control requests (see :mod:`katcpx.gateway._control`).
    heartbeat_interval
        Seconds between heartbeats; web instances deem the gateway gone after
        :data:`~katcpx.web._redis_keys.GATEWAY_TTL` without one.
    takeover
        Start even if another gateway's heartbeat is live (:meth:`start` refuses otherwise).

    Raises
    ------
    ValueError
        For a bad `sensors` expression, strategy or bound.
    """

    def __init__(
        self,
        devices: Iterable[DeviceSpec],
        redis_url: str,
        prefix: str = "katcpx",
        strategy: Sequence[str | float] = DEFAULT_STRATEGY,
        sensors: str = "",
        maxlen: int = 100_000,
        max_age: float | None = None,
        buffer_limit: int = 1_000_000,
        request_timeout: float = 5.0,
        policy: ControlPolicy | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        takeover: bool = False,
    ) -> None:
        try:
            self.pattern = re.compile(sensors)
        except re.error as exc:
            raise ValueError(f"bad sensor expression {sensors!r}: {exc}") from None
        self.keys = Keys(prefix)
        #: Where Redis is, for messages and logs (the password, if any, replaced by ***).
        self.redis_url = redact_url(redis_url)
        self.hub = DeviceHub(devices, strategy, request_timeout=request_timeout, history_size=0)
        self.redis = connect(redis_url)
        self.writer = RedisWriter(
            self.redis, self.keys, maxlen, max_age, buffer_limit, on_connect=self.write_state
        )
        self.control = ControlServer(connect(redis_url), self.keys, self.hub, policy)
        self.heartbeat_interval = heartbeat_interval
        self.takeover = takeover
        self.id = uuid.uuid4().hex
        self.started = time.time()
        #: Readings received from the devices.
        self.readings = 0
        self._states: dict[str, dict[str, Any]] = {}
        self._carried: dict[str, dict[str, KATCPSensor]] = {}
        self._interfaces: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self._listeners: dict[str, Any] = {}
        self._heartbeat: asyncio.Future[None] | None = None
        self._flowing: set[str] = set()
        self._last_written: dict[str, dict[str, tuple[float, str, Any]]] = {}

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Redis and the devices (both in the background) and start serving.

        Raises
        ------
        GatewayConflict
            Another gateway's heartbeat is live in this Redis database (and not `takeover`).
        """
        await self._check_alone()
        for name in self.hub.device_names:
            self._states[name] = self.hub.device_message(name)
            self._carried[name] = {}
        self.hub.attach(_StateSink(self))
        if not self.pattern.pattern:
            # Every sensor: one memorised filter, applied in bulk as sensors appear.
            for name in self.hub.device_names:
                self.hub.resource(name).set_sampling_strategies("", self.hub.strategy)
        self.writer.start()
        await self.hub.start()
        self.control.start()
        self._heartbeat = asyncio.ensure_future(self._beat())

    async def _check_alone(self) -> None:
        try:
            raw = await asyncio.wait_for(self.redis.get(self.keys.gateway), 5.0)
        except (RedisError, OSError, asyncio.TimeoutError):
            return  # unreachable: the writer says so, and the check cannot be made
        if raw is None or self.takeover:
            return
        try:
            other = json.loads(raw)
        except ValueError:
            other = {}
        other = other if isinstance(other, dict) else {}
        raise GatewayConflict(
            f"another katcpx-gateway (pid {other.get('pid', '?')}, devices "
            f"{', '.join(map(str, other.get('devices') or [])) or '?'}) is writing to Redis at "
            f"{self.writer.where} with prefix {self.keys.prefix!r}: stop it, use another "
            "database or --prefix, or start with --takeover to replace it"
        )

    async def stop(self) -> None:
        """Stop serving: the heartbeat is deleted so web instances know at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        await self.control.stop()
        await self.hub.stop()
        if self.writer.connected:
            self.writer.add_command("EVAL", DEL_OWN_HEARTBEAT, 1, self.keys.gateway, self.id)
        await self.writer.stop()
        await self.control.redis.aclose()
        await self.redis.aclose()

    def status(self) -> dict[str, Any]:
        """The heartbeat's content: identity, devices, strategy and reading counters."""
        return {
            "id": self.id,
            "pid": os.getpid(),
            "started": self.started,
            "devices": self.hub.device_names,
            "strategy": list(self.hub.strategy),
            # Web instances with --users refuse control unless the gateway checks users.
            "checks_users": self.control.policy is not None,
            "readings": self.readings,
            "carried": sum(len(c) for c in self._carried.values()),
            **self.writer.stats(),
        }

    async def _beat(self) -> None:
        while True:
            self._write_heartbeat()
            await asyncio.sleep(self.heartbeat_interval)

    def _write_heartbeat(self) -> None:
        ttl = max(GATEWAY_TTL, 3 * self.heartbeat_interval)
        self.writer.add_command(
            "SET", self.keys.gateway, json.dumps(self.status()), "PX", int(ttl * 1000)
        )

    # -- devices -----------------------------------------------------------------------------

    def device_changed(self, msg: dict[str, Any]) -> None:
        """A device's state changed: publish it, carry its sensors or mark them unreachable."""
        name = msg["device"]
        previous = self._states.get(name, {}).get("state")
        self._states[name] = msg
        text = json.dumps(msg)
        if msg["state"] == "synced":
            self._carry(name)
            self._announce(name)
        else:
            self._flowing.discard(name)
            if msg["state"] == "disconnected" and previous != "disconnected":
                self._mark_unreachable(name)
        # The state last, after the interface that _carry writes: a reader that sees
        # "synced" then finds every sensor (commands run in order on one connection).
        self.writer.add_command("HSET", self.keys.devices, name, text)
        self.writer.add_command("PUBLISH", self.keys.events, text)

    def _announce(self, device: str) -> None:
        """Log once per sync (and per Redis connection) that `device`'s readings flow into
        Redis: the line scripts and docs wait for (the hub's "is synced" alone does not mean
        Redis gets anything)."""
        if device not in self._flowing and self.writer.connected:
            self._flowing.add(device)
            log.info("device %s: readings flow into Redis at %s", device, self.writer.where)

    def reading_listener(self, device: str) -> Any:
        """The sensor listener carrying `device`'s readings into Redis (one per device)."""
        listener = self._listeners.get(device)
        if listener is None:
            device_json = json.dumps(device)
            names: dict[str, str] = {}
            writer = self.writer

            last = self._last_written.setdefault(device, {})

            def listener(sensor: KATCPSensor, reading: Any) -> None:
                name = sensor.name
                # A refresh re-reads an unchanged reading: one stream entry per reading.
                seen = (reading.timestamp, reading.status, reading.value)
                if last.get(name) == seen:
                    return
                last[name] = seen
                sensor_json = names.get(name)
                if sensor_json is None:
                    sensor_json = names[name] = json.dumps(name)
                self.readings += 1
                writer.add_reading(
                    device,
                    name,
                    update_text(
                        device_json,
                        sensor_json,
                        value_json(reading.value),
                        reading.status,
                        reading.timestamp,
                        reading.received_timestamp,
                    ),
                )

            self._listeners[device] = listener
        return listener

    def _carry(self, device: str) -> None:
        """(Re)bind to the device's sensor objects, write its interface, sample its sensors."""
        res = self.hub.resource(device)
        listener = self.reading_listener(device)
        carried = {s.name: s for s in self.hub.sensors(device) if self.pattern.search(s.name)}
        previous = self._carried.get(device, {})
        self._carried[device] = carried
        for sensor in carried.values():
            if not sensor.is_listener(listener):
                sensor.register_listener(listener, reading=True)
                if sensor.reading.received_timestamp > 0:
                    # Sampled before this listener was there (first sync): carry it now.
                    listener(sensor, sensor.reading)
        if self.pattern.pattern and set(carried) != set(previous) and carried:
            # One memorised strategy per carried sensor, re-applied by the resource on
            # every reconnection, in bulk when the device supports it.
            names = "|".join(re.escape(escape_name(n)) for n in carried)
            res.set_sampling_strategies(f"^(?:{names})$", self.hub.strategy)
        interface = self._interface(device)
        old = self._interfaces.get(device)
        self._interfaces[device] = interface
        self._write_interface(device, interface, old)
        if old is not None and old != interface:
            self.writer.add_command(
                "PUBLISH",
                self.keys.events,
                json.dumps({"type": "interface-changed", "device": device}),
            )

    def _interface(self, device: str) -> tuple[dict[str, str], dict[str, str]]:
        sensors = {
            name: json.dumps(sensor_meta(device, s)) for name, s in self._carried[device].items()
        }
        requests = {
            r.name: json.dumps({"description": r.description, "timeout_hint": r.timeout_hint})
            for r in self.hub.requests(device)
        }
        return sensors, requests

    def _write_interface(
        self,
        device: str,
        interface: tuple[dict[str, str], dict[str, str]],
        old: tuple[dict[str, str], dict[str, str]] | None,
    ) -> None:
        sensors, requests = interface
        for key, mapping, previous in (
            (self.keys.sensors(device), sensors, old[0] if old else None),
            (self.keys.requests(device), requests, old[1] if old else None),
        ):
            if previous is None:
                self.writer.add_command("DEL", key)
            else:
                gone = [k for k in previous if k not in mapping]
                if gone:
                    self.writer.add_command("HDEL", key, *gone)
            if mapping:
                self.writer.add_command("HSET", key, *[x for kv in mapping.items() for x in kv])
        if old is not None:
            gone = [k for k in old[0] if k not in sensors]
            if gone:
                self.writer.add_command("HDEL", self.keys.values(device), *gone)

    def _mark_unreachable(self, device: str) -> None:
        """Write an ``unreachable`` reading (last value kept) for each carried sensor."""
        now = time.time()
        self._last_written.get(device, {}).clear()  # the next live reading is news again
        device_json = json.dumps(device)
        for name, sensor in self._carried.get(device, {}).items():
            reading = sensor.reading
            value = value_json(reading.value) if reading.received_timestamp > 0 else "null"
            self.writer.add_reading(
                device,
                name,
                update_text(device_json, json.dumps(name), value, "unreachable", now, now, False),
            )

    def write_state(self) -> None:
        """Queue the whole state: devices, interfaces, current values (Redis may be new),
        and drop the devices a previous gateway carried and this one does not."""
        self.writer.add_command(
            "EVAL",
            DROP_OTHER_DEVICES,
            2,
            self.keys.devices,
            self.keys.events,
            self.keys.prefix,
            *self._states,
        )
        for name, msg in self._states.items():
            self.writer.add_command("HSET", self.keys.devices, name, json.dumps(msg))
            interface = self._interfaces.get(name)
            if interface is not None:
                self._write_interface(name, interface, None)
            device_json = json.dumps(name)
            connected = msg.get("state") != "disconnected"
            values: list[str] = []
            for sensor_name, sensor in self._carried.get(name, {}).items():
                reading = sensor.reading
                if reading.received_timestamp <= 0:
                    continue
                status = reading.status if connected else "unreachable"
                values += [
                    sensor_name,
                    update_text(
                        device_json,
                        json.dumps(sensor_name),
                        value_json(reading.value),
                        status,
                        reading.timestamp,
                        reading.received_timestamp,
                        connected,
                    ),
                ]
            if values:
                self.writer.add_command("HSET", self.keys.values(name), *values)
        self._write_heartbeat()
        self._flowing.clear()
        for name, msg in self._states.items():
            if msg.get("state") == "synced":
                self._announce(name)
