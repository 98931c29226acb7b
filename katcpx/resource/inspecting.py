"""The inspecting client: an :class:`~katcpx.client.AsyncClient` that learns a server's interface.

On every connection it fetches ``?help`` (plus ``?request-timeout-hint`` when the server
announces the ``T`` flag) and ``?sensor-list``, and reports what was added, removed or
modified to its owner. ``#interface-changed`` in any of its forms triggers an incremental
re-sync of just what changed; ``#sensor-status`` informs go straight to the owner.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..client import AsyncClient
from ..errors import RequestFailed
from ..flags import ProtocolFlags
from ..message import Message

__all__ = ["InspectingClient", "ModelChanges", "InspectingOwner"]

log = logging.getLogger("katcpx.resource")

#: Description of one request: ``{"name", "description", "timeout_hint"}``.
RequestDescription = dict[str, Any]
#: Description of one sensor: ``{"name", "description", "units", "type", "params"}``.
SensorDescription = dict[str, Any]


@dataclass
class ModelChanges:
    """What a sync found: descriptions of added or modified items, names of removed ones."""

    requests_added: dict[str, RequestDescription] = field(default_factory=dict)
    requests_removed: set[str] = field(default_factory=set)
    sensors_added: dict[str, SensorDescription] = field(default_factory=dict)
    sensors_removed: set[str] = field(default_factory=set)
    #: True for the first sync of a connection: the server has no strategies set yet.
    new_connection: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.requests_added
            or self.requests_removed
            or self.sensors_added
            or self.sensors_removed
            or self.new_connection
        )


class InspectingOwner(Protocol):
    """What the inspecting client reports to (a :class:`KATCPClientResource`)."""

    def _client_state(self, state: str) -> None:
        """The sync state changed: ``"disconnected"``, ``"syncing"`` or ``"synced"``."""

    async def _apply_changes(self, changes: ModelChanges) -> None:
        """Apply a sync's findings (awaited before the state becomes ``"synced"``)."""

    def _sensor_status(self, msg: Message) -> None:
        """A ``#sensor-status`` inform arrived."""


@dataclass
class _Pending:
    """Interface changes announced but not yet fetched."""

    all_requests: bool = False
    all_sensors: bool = False
    requests: set[str] = field(default_factory=set)
    sensors: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.all_requests or self.all_sensors or self.requests or self.sensors)


class InspectingClient(AsyncClient):
    """Client that syncs a server's requests and sensors and keeps them up to date.

    Parameters
    ----------
    host, port
        The server's address.
    owner
        Receives state changes, model changes and sensor updates (see
        :class:`InspectingOwner`); all calls happen on the client's loop.
    timeout
        Default request timeout in seconds.
    logger
        Logger to log to.
    auto_reconnect
        Whether to reconnect when the connection drops.
    """

    #: Seconds to wait for the server's ``#version-connect`` before syncing regardless.
    PROTOCOL_TIMEOUT = 5.0
    #: Seconds allowed for each sync request (``?help``, ``?sensor-list`` ...).
    SYNC_TIMEOUT = 30.0

    def __init__(
        self,
        host: str,
        port: int,
        owner: InspectingOwner,
        timeout: float | None = 5.0,
        logger: logging.Logger = log,
        auto_reconnect: bool = True,
    ) -> None:
        super().__init__(host, port, timeout=timeout, logger=logger, auto_reconnect=auto_reconnect)
        # The sync fetches the hints itself: it needs them per request for the model.
        self.use_timeout_hints = False
        self._owner = owner
        #: The server's requests as last synced, by KATCP name.
        self.requests: dict[str, RequestDescription] = {}
        #: The server's sensors as last synced, by KATCP name.
        self.sensors: dict[str, SensorDescription] = {}
        self._pending = _Pending()
        self._worker: asyncio.Task[None] | None = None
        self._synced = False

    # -- connection events -----------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """Whether the model matches the server (no sync running or pending)."""
        return self._synced

    def notify_connected(self, connected: bool) -> None:
        """Start a full sync on connection; report ``disconnected`` on disconnection."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        self._synced = False
        if connected:
            self._pending = _Pending(all_requests=True, all_sensors=True)
            self._worker = asyncio.ensure_future(self._sync_worker(new_connection=True))
        else:
            self._pending = _Pending()
            self._owner._client_state("disconnected")

    def _client_stopped(self) -> None:
        super()._client_stopped()
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    # -- informs ---------------------------------------------------------------------------

    def inform_sensor_status(self, msg: Message) -> None:
        """Pass ``#sensor-status`` to the owner."""
        self._owner._sensor_status(msg)

    def inform_interface_changed(self, msg: Message) -> None:
        """Queue an incremental re-sync for ``#interface-changed`` (any of its forms)."""
        args = [a.decode("utf-8", "replace") for a in msg.arguments]
        pending = self._pending
        if not args:
            pending.all_requests = pending.all_sensors = True
        elif args[0] == "sensor-list":
            pending.all_sensors = True
        elif args[0] == "request-list":
            pending.all_requests = True
        elif args[0] == "sensor" and len(args) >= 2:
            pending.sensors.add(args[1])
        elif args[0] == "request" and len(args) >= 2:
            pending.requests.add(args[1])
        else:
            pending.all_requests = pending.all_sensors = True
        self._kick()

    def inform_device_changed(self, msg: Message) -> None:
        """KATCP v4's ``#device-changed``: re-sync everything."""
        self._pending.all_requests = self._pending.all_sensors = True
        self._kick()

    def _kick(self) -> None:
        if self._conn is None:
            return
        if self._synced:
            # Report "syncing" at once, so that a caller whose request changed the interface
            # (the inform precedes the reply) can await until_synced() for the new model.
            self._synced = False
            self._owner._client_state("syncing")
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._sync_worker(new_connection=False))

    # -- syncing ---------------------------------------------------------------------------

    async def _sync_worker(self, new_connection: bool) -> None:
        try:
            if new_connection:
                # Connected: "syncing" at once, as katcp-python's inspecting client reports
                # connected-not-synced before the device has said anything; a silent device
                # so shows as connected rather than disconnected.
                self._owner._client_state("syncing")
                try:
                    await self.until_protocol(self.PROTOCOL_TIMEOUT)
                except asyncio.TimeoutError:
                    self._logger.warning(
                        "No protocol information from %s; syncing anyway",
                        self.bind_address_string,
                    )
            if self._synced:
                self._synced = False
                self._owner._client_state("syncing")
            while self._pending or new_connection:
                pending, self._pending = self._pending, _Pending()
                changes = await self._fetch(pending)
                changes.new_connection = new_connection
                new_connection = False
                if changes:
                    await self._owner._apply_changes(changes)
            self._synced = True
            self._owner._client_state("synced")
        except asyncio.CancelledError:
            raise
        except RequestFailed as exc:
            if self._conn is not None:
                self._logger.error(
                    "Sync with %s failed (%s); reconnecting", self.bind_address_string, exc
                )
                self.disconnect()
        except Exception:
            self._logger.exception("Sync with %s failed; reconnecting", self.bind_address_string)
            self.disconnect()

    async def _fetch(self, pending: _Pending) -> ModelChanges:
        changes = ModelChanges()
        if pending.all_requests:
            new = await self._fetch_requests(None)
            self._diff(self.requests, new, changes.requests_added, changes.requests_removed)
        else:
            for name in sorted(pending.requests):
                self._diff_one(
                    self.requests,
                    name,
                    await self._fetch_requests(name),
                    changes.requests_added,
                    changes.requests_removed,
                )
        if pending.all_sensors:
            new = await self._fetch_sensors(None)
            self._diff(self.sensors, new, changes.sensors_added, changes.sensors_removed)
        else:
            for name in sorted(pending.sensors):
                self._diff_one(
                    self.sensors,
                    name,
                    await self._fetch_sensors(name),
                    changes.sensors_added,
                    changes.sensors_removed,
                )
        return changes

    @staticmethod
    def _diff(
        old: dict[str, dict[str, Any]],
        new: dict[str, dict[str, Any]],
        added: dict[str, dict[str, Any]],
        removed: set[str],
    ) -> None:
        for name in list(old):
            if name not in new:
                removed.add(name)
                del old[name]
        for name, desc in new.items():
            if old.get(name) != desc:
                added[name] = desc
                old[name] = desc

    @classmethod
    def _diff_one(
        cls,
        old: dict[str, dict[str, Any]],
        name: str,
        new: dict[str, dict[str, Any]],
        added: dict[str, dict[str, Any]],
        removed: set[str],
    ) -> None:
        if name in new:
            if old.get(name) != new[name]:
                added[name] = old[name] = new[name]
        elif name in old:
            del old[name]
            removed.add(name)

    async def _sync_call(self, name: str, *args: Any) -> tuple[Message, list[Message]]:
        return await self.call(name, *args, timeout=self.SYNC_TIMEOUT)

    async def _fetch_requests(self, name: str | None) -> dict[str, RequestDescription]:
        """``?help`` (and hints) for one request, or all when `name` is None."""
        args = () if name is None else (name,)
        try:
            _reply, informs = await self._sync_call("help", *args)
        except RequestFailed as exc:
            if exc.reply is None:
                raise
            if name is None:
                self._logger.warning("%s: %s", self.bind_address_string, exc)
            return {}  # the request is gone (or the server can't list them)
        result: dict[str, RequestDescription] = {}
        for inform in informs:
            if not inform.arguments:
                continue
            rname = inform.arguments[0].decode("utf-8", "replace")
            desc = (
                inform.arguments[1].decode("utf-8", "replace") if len(inform.arguments) > 1 else ""
            )
            result[rname] = {"name": rname, "description": desc, "timeout_hint": None}
        flags = self.protocol_flags
        if result and flags is not None and flags.supports(ProtocolFlags.REQUEST_TIMEOUT_HINTS):
            try:
                _reply, informs = await self._sync_call("request-timeout-hint", *args)
            except RequestFailed as exc:
                if exc.reply is None:
                    raise
                informs = []  # no hint for this request
            for inform in informs:
                if len(inform.arguments) < 2:
                    continue
                rname = inform.arguments[0].decode("utf-8", "replace")
                try:
                    hint = float(inform.arguments[1])
                except ValueError:
                    continue
                if rname in result and hint > 0:
                    result[rname]["timeout_hint"] = hint
        return result

    async def _fetch_sensors(self, name: str | None) -> dict[str, SensorDescription]:
        """``?sensor-list`` for one sensor, or all when `name` is None."""
        args = () if name is None else (name,)
        try:
            _reply, informs = await self._sync_call("sensor-list", *args)
        except RequestFailed as exc:
            if exc.reply is None:
                raise
            if name is None:
                self._logger.warning("%s: %s", self.bind_address_string, exc)
            return {}  # the sensor is gone (or the server can't list them)
        result: dict[str, SensorDescription] = {}
        for inform in informs:
            a = inform.arguments
            if len(a) < 4:
                continue
            sname = a[0].decode("utf-8", "replace")
            result[sname] = {
                "name": sname,
                "description": a[1].decode("utf-8", "replace"),
                "units": a[2].decode("utf-8", "replace"),
                "type": a[3].decode("utf-8", "replace"),
                "params": list(a[4:]),
            }
        return result
