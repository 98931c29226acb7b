"""The inspecting client: an :class:`~katcpx.client.AsyncClient` that learns a server's interface.

On every connection it fetches ``?help`` (plus ``?request-timeout-hint`` when the server
announces the ``T`` flag) and ``?sensor-list``, and reports what was added, removed or
modified to its owner, and which sensors the server announced as changed. ``#interface-changed``
in any of its forms triggers an incremental re-sync of just what changed; ``#sensor-status``
informs go straight to the owner.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..client import AsyncClient
from ..errors import RequestFailed
from ..flags import ProtocolFlags
from ..message import Message

__all__ = ["InspectingClient", "ModelChanges", "InspectingOwner", "SyncError"]

log = logging.getLogger("katcp.resource")

#: Description of one request: ``{"name", "description", "timeout_hint"}``.
RequestDescription = dict[str, Any]
#: Description of one sensor: ``{"name", "description", "units", "type", "params"}``.
SensorDescription = dict[str, Any]


def apply_model_diff(
    old: dict[str, dict[str, Any]],
    new: dict[str, dict[str, Any]],
    added: dict[str, dict[str, Any]],
    removed: set[str],
) -> None:
    """Make `old` equal `new`, noting new or changed descriptions in `added` and the names
    that went in `removed`."""
    for name in list(old):
        if name not in new:
            removed.add(name)
            del old[name]
    for name, desc in new.items():
        if old.get(name) != desc:
            added[name] = desc
            old[name] = desc


class SyncError(Exception):
    """An inspection request (``?help``, ``?sensor-list`` ...) got a reply other than ``ok``.

    Spec 5.1 section 2: only ``ok`` is success, so a failed list is never an empty one. The
    sync is retried with backoff and the last good model kept (katcp-python's
    ``SyncError``).
    """


def _says_unknown(reply: Message) -> bool:
    """Whether a fail reply to ``?help name`` / ``?sensor-list name`` means "no such item".

    katcp-python looks for "Unknown request" / "Unknown sensor"; aiokatcp says "request x
    is not known" for ``?help``.
    """
    text = reply.arguments[1].decode("utf-8", "replace").lower() if len(reply.arguments) > 1 else ""
    return "unknown" in text or "not known" in text


def _asked(request: str, name: str | None) -> str:
    return f"?{request}" if name is None else f"?{request} {name}"


@dataclass
class ModelChanges:
    """What a sync found: descriptions of added or modified items, names of removed ones."""

    requests_added: dict[str, RequestDescription] = field(default_factory=dict)
    requests_removed: set[str] = field(default_factory=set)
    sensors_added: dict[str, SensorDescription] = field(default_factory=dict)
    sensors_removed: set[str] = field(default_factory=set)
    #: Sensors the server announced (``#interface-changed``) that are still there with the
    #: same description: the server may have replaced them and dropped their strategies.
    sensors_announced: set[str] = field(default_factory=set)
    #: True for the first sync of a connection: the server has no strategies set yet.
    new_connection: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.requests_added
            or self.requests_removed
            or self.sensors_added
            or self.sensors_removed
            or self.sensors_announced
            or self.new_connection
        )


@dataclass(frozen=True)
class InspectingOwner:
    """What the inspecting client reports to (a resource's
    :attr:`~katcpx.resource.KATCPClientResource.inspecting_owner`); each is called on the
    client's loop."""

    #: The sync state changed: ``"disconnected"``, ``"syncing"`` or ``"synced"``.
    state_changed: Callable[[str], None]
    #: Apply a sync's findings (awaited before the state becomes ``"synced"``).
    apply_changes: Callable[[ModelChanges], Awaitable[None]]
    #: A ``#sensor-status`` inform arrived.
    sensor_status: Callable[[Message], None]


@dataclass
class _Pending:
    """Interface changes announced but not yet fetched."""

    all_requests: bool = False
    all_sensors: bool = False
    requests: set[str] = field(default_factory=set)
    sensors: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.all_requests or self.all_sensors or self.requests or self.sensors)

    def merge(self, other: _Pending) -> None:
        """Add what `other` still has to fetch."""
        self.all_requests |= other.all_requests
        self.all_sensors |= other.all_sensors
        self.requests |= other.requests
        self.sensors |= other.sensors


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
    #: Seconds before the first retry of a sync whose requests failed; each further failure
    #: multiplies it by :attr:`SYNC_RETRY_FACTOR`, up to :attr:`SYNC_RETRY_MAX_DELAY`
    #: (katcp-python's resync backoff: 1 s, times 3, at most 90 s, randomised).
    SYNC_RETRY_DELAY = 1.0
    SYNC_RETRY_FACTOR = 3.0
    SYNC_RETRY_MAX_DELAY = 90.0

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
        self._retry_delay = self.SYNC_RETRY_DELAY

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
            self._owner.state_changed("disconnected")

    def _client_stopped(self) -> None:
        super()._client_stopped()
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    # -- informs ---------------------------------------------------------------------------

    def inform_sensor_status(self, msg: Message) -> None:
        """Pass ``#sensor-status`` to the owner."""
        self._owner.sensor_status(msg)

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
            self._owner.state_changed("syncing")
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._sync_worker(new_connection=False))

    # -- syncing ---------------------------------------------------------------------------

    async def _sync_worker(self, new_connection: bool) -> None:
        try:
            if new_connection:
                # Connected: "syncing" at once, as katcp-python's inspecting client reports
                # connected-not-synced before the device has said anything; a silent device
                # so shows as connected rather than disconnected.
                self._owner.state_changed("syncing")
                try:
                    await self.until_ready(self.PROTOCOL_TIMEOUT)
                except asyncio.TimeoutError:
                    self._logger.warning(
                        "No protocol information from %s; syncing anyway",
                        self.bind_address_string,
                    )
            if self._synced:
                self._synced = False
                self._owner.state_changed("syncing")
            while self._pending or new_connection:
                pending, self._pending = self._pending, _Pending()
                try:
                    changes = await self._fetch(pending)
                except SyncError as exc:
                    # Keep the last good model (nothing was applied) and try again later.
                    self._pending.merge(pending)
                    delay = self._retry_delay * (0.5 + 0.5 * random.random())
                    self._retry_delay = min(
                        self._retry_delay * self.SYNC_RETRY_FACTOR, self.SYNC_RETRY_MAX_DELAY
                    )
                    self._logger.warning(
                        "Error syncing with %s: %s; keeping the last model, retrying in %.2f s",
                        self.bind_address_string,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                self._retry_delay = self.SYNC_RETRY_DELAY
                changes.new_connection = new_connection
                new_connection = False
                if changes:
                    await self._owner.apply_changes(changes)
            self._synced = True
            self._owner.state_changed("synced")
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
        """Fetch what `pending` names, then update the model; a failure changes nothing."""
        # Everything is fetched before the model changes, so a SyncError part-way leaves
        # the last good model whole.
        requests = await self._fetch_requests(None) if pending.all_requests else None
        one_request = {name: await self._fetch_requests(name) for name in sorted(pending.requests)}
        sensors = await self._fetch_sensors(None) if pending.all_sensors else None
        one_sensor = {name: await self._fetch_sensors(name) for name in sorted(pending.sensors)}
        changes = ModelChanges()
        if requests is not None:
            self._diff(self.requests, requests, changes.requests_added, changes.requests_removed)
        else:
            for name, new in one_request.items():
                self._diff_one(
                    self.requests, name, new, changes.requests_added, changes.requests_removed
                )
        if sensors is not None:
            self._diff(self.sensors, sensors, changes.sensors_added, changes.sensors_removed)
        else:
            for name, new in one_sensor.items():
                self._diff_one(
                    self.sensors, name, new, changes.sensors_added, changes.sensors_removed
                )
        # A sensor announced (singly, or all by ``sensor-list``) may have been replaced by
        # one described alike: spec 5.1 section 4.2 does not say whether the server kept
        # its strategies (katcpx's does, aiokatcp's drops them).
        announced = set(sensors) if sensors is not None else set(one_sensor)
        changes.sensors_announced = {
            name for name in announced if name in self.sensors and name not in changes.sensors_added
        }
        return changes

    _diff = staticmethod(apply_model_diff)

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

    async def _listing(
        self, request: str, name: str | None, what: str | None = None
    ) -> list[Message] | None:
        """The informs of ``?request [name]``; None when the single `name` is unknown (gone).

        Raises
        ------
        SyncError
            Any other failure, naming `what` (default the request as sent): only ``ok`` is
            success (spec 5.1 section 2), so a failed listing is never an empty one.
        """
        args = () if name is None else (name,)
        try:
            _reply, informs = await self._sync_call(request, *args)
        except RequestFailed as exc:
            if exc.reply is None:
                raise
            if name is None or not _says_unknown(exc.reply):
                raise SyncError(f"{what or _asked(request, name)} failed: {exc}") from None
            return None
        return informs

    async def _fetch_requests(self, name: str | None) -> dict[str, RequestDescription]:
        """``?help`` (and hints) for one request, or all when `name` is None."""
        informs = await self._listing("help", name)
        if informs is None:
            return {}  # the request is gone
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
            hints = await self._listing("request-timeout-hint", name, "?request-timeout-hint")
            for inform in hints or ():  # None: no hint for this request
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
        informs = await self._listing("sensor-list", name)
        if informs is None:
            return {}  # the sensor is gone
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
