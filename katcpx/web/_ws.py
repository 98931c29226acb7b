"""The websocket endpoint: JSON actions in, sensor updates and replies out.

Actions (client to server), each a JSON object with an ``action`` and an optional ``id``
that is echoed in the answer:

``subscribe`` / ``subscribeSafely``
    ``device`` and ``sensor`` (one name) or ``sensors`` (a list). ``subscribeSafely`` only
    subscribes when the device is synced and has the sensor.
``unsubscribe``
    ``device`` and ``sensor`` or ``sensors``.
``set``
    ``device``, ``request``, ``args`` (a list, or one scalar; ``value`` is an alias for one
    argument) and an optional ``timeout`` in seconds: issues the KATCP request.
``auth``
    ``token``: the bridge's token (``--token-file``), needed before ``set`` on a guarded
    bridge; answered with ``{"type": "auth", "ok": true}`` or an ``unauthorized`` error.
``refresh``
    Reads every subscribed sensor afresh (or those of ``device``, optionally only
    ``sensor``/``sensors``); the new readings arrive as ``update`` messages.

See ``docs/web.md`` for the messages the server sends. A client connecting to
``/api/ws?batch=1`` gets every frame as a JSON array of messages (what was queued in one
turn, up to :data:`MAX_BATCH`), which saves a frame per reading when many sensors change.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import tornado.web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from .._version import __version__
from ._auth import check_request_size, guard_of, loads, same_origin
from ._hub import HubError, dumps
from ._source import SensorSource
from ._users import User, acting_as

__all__ = ["ACTIONS", "DeviceSocketHandler"]

log = logging.getLogger("katcp.web")

#: Actions the websocket understands.
ACTIONS = ("subscribe", "subscribeSafely", "unsubscribe", "set", "refresh")
#: Queued messages beyond which a socket that does not read is closed.
MAX_QUEUED = 20_000
#: Most sensors one ``refresh`` polls at the same time.
REFRESH_CONCURRENCY = 16
#: Most messages in one frame of a ``?batch=1`` socket.
MAX_BATCH = 1000


class BadMessage(HubError):
    """A websocket message that is not a valid action."""

    code = "bad_message"


class DeviceSocketHandler(WebSocketHandler):
    """One browser's websocket connection to the hub.

    Outgoing messages are queued and written by one flushing task that waits for each
    batch to reach the socket, so a slow browser gets the newest reading of each sensor
    (older queued readings are replaced) instead of an ever growing backlog.
    """

    hub: SensorSource

    def initialize(self, hub: SensorSource, allowed_origins: tuple[str, ...] = ()) -> None:
        """Called by tornado with the handler's keyword arguments from the application."""
        self.hub = hub
        self._allowed_origins = allowed_origins
        self._out: OrderedDict[Hashable, str] = OrderedDict()
        self._serial = 0
        self._flusher: asyncio.Future[None] | None = None
        self._closed = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._token: str | None = None
        self._batch = False

    def check_origin(self, origin: str) -> bool:
        """Same-origin browsers, non-browser clients and the configured origins may connect."""
        if "*" in self._allowed_origins or origin in self._allowed_origins:
            return True
        return same_origin(origin, self.request.host, self.request.protocol)

    def prepare(self) -> None:
        """Refuse (403) a browser origin of another scheme, host or port before the upgrade.

        Tornado's own check passes an ``Origin`` whose host matches whatever its scheme;
        an ``http://`` page must not drive an HTTPS bridge (RFC 6454 section 4).
        """
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.check_origin(origin):
            raise tornado.web.HTTPError(403, "cross-origin websocket from %s refused", origin)

    # -- connection --------------------------------------------------------------------------

    def open(self, *args: str, **kwargs: str) -> None:
        """Greet with the list of devices and start pushing device state changes."""
        self._batch = self.get_query_argument("batch", "0") in ("1", "true")
        self.hub.attach(self)
        self.push(
            dumps(
                {
                    "type": "hello",
                    "server": f"katcpx-web {__version__}",
                    "actions": self._actions(),
                    "strategy": list(self.hub.strategy),
                    "control": guard_of(self.settings).mode,
                    "devices": [self.hub.device_message(n) for n in self.hub.device_names],
                }
            )
        )
        try:
            check = getattr(self.hub, "check_loaded", None)  # katcpx-web --redis only
            if check is not None:
                check()
        except HubError as exc:
            self.push(dumps({"type": "error", "code": exc.code, "error": str(exc)}))

    def on_close(self) -> None:
        """Drop this socket's subscriptions (the last subscriber stops the sampling)."""
        self._closed = True
        self.hub.detach(self)
        for task in list(self._tasks):
            task.cancel()

    # -- output ------------------------------------------------------------------------------

    def push(self, text: str, key: Hashable | None = None) -> None:
        """Queue `text`; a queued text with the same non-None `key` is replaced by it."""
        if self._closed:
            return
        if key is None:
            self._serial += 1
            key = self._serial
        elif key in self._out:
            del self._out[key]  # re-queued at the end: after any meta sent since
        self._out[key] = text
        if len(self._out) > MAX_QUEUED:
            log.warning(
                "closing websocket %s: %d messages unread", self.request.remote_ip, MAX_QUEUED
            )
            self._closed = True
            self._out.clear()
            self.close(1008, "too many unread messages")
            return
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())

    def _send(self, obj: dict[str, Any], msg: dict[str, Any] | None = None) -> None:
        if msg is not None and "id" in msg:
            obj["id"] = msg["id"]
        self.push(dumps(obj))

    def _error(self, error: str, code: str = "error", msg: Any = None, **extra: Any) -> None:
        obj: dict[str, Any] = {"type": "error", "code": code, "error": error}
        if isinstance(msg, dict):
            if isinstance(msg.get("action"), str):
                obj["action"] = msg["action"]
            if "id" in msg:
                obj["id"] = msg["id"]
        obj.update(extra)
        self.push(dumps(obj))

    async def _flush(self) -> None:
        try:
            while self._out and not self._closed:
                batch = list(self._out.values())
                self._out.clear()
                if self._batch:  # one frame, a JSON array, per MAX_BATCH messages
                    batch = [
                        "[" + ",".join(batch[i : i + MAX_BATCH]) + "]"
                        for i in range(0, len(batch), MAX_BATCH)
                    ]
                last = None
                for text in batch:
                    last = self.write_message(text)
                    # Only the last one is awaited: the others' errors (a socket closing
                    # mid-batch) must still be retrieved, or asyncio logs them.
                    last.add_done_callback(_consume)
                if last is not None:
                    await last  # back-pressure: let the socket drain before the next batch
        except WebSocketClosedError:
            self._closed = True
        finally:
            self._flusher = None
            if self._out and not self._closed:
                self._flusher = asyncio.ensure_future(self._flush())

    # -- input -------------------------------------------------------------------------------

    def on_message(self, message: str | bytes) -> None:
        """Parse one JSON action and carry it out; bad input earns an ``error`` message."""
        try:
            msg = loads(message)
        except HubError as exc:
            self._error(str(exc), exc.code)
            return
        if not isinstance(msg, dict):
            self._error("a message must be a JSON object", "bad_message")
            return
        action = msg.get("action")
        if action == "auth":
            self._auth(msg)
            return
        handler = (
            {
                "subscribe": self._subscribe,
                "subscribeSafely": self._subscribe,
                "unsubscribe": self._unsubscribe,
                "set": self._set,
                "refresh": self._refresh,
            }.get(action)
            if isinstance(action, str)
            else None
        )
        if handler is None:
            self._error(
                f"unknown action {action!r}; expected one of {', '.join(self._actions())}",
                "unknown_action",
                msg,
            )
            return
        try:
            handler(msg)
        except HubError as exc:
            self._error(str(exc), exc.code, msg, **_target(msg))
        except Exception as exc:  # a bug must not take the server down
            log.exception("websocket action %r failed", action)
            self._error(f"internal error: {exc}", "internal", msg)

    @staticmethod
    def _names(msg: dict[str, Any], required: bool = True) -> list[str]:
        if "sensors" in msg:
            names = msg["sensors"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise BadMessage("'sensors' must be a list of sensor names")
            return names
        if "sensor" in msg:
            if not isinstance(msg["sensor"], str):
                raise BadMessage("'sensor' must be a sensor name")
            return [msg["sensor"]]
        if required:
            raise BadMessage("give 'sensor' or 'sensors'")
        return []

    def _device(self, msg: dict[str, Any]) -> str:
        device = msg.get("device")
        if not isinstance(device, str):
            raise BadMessage("give 'device' (a device name)")
        self.hub.resource(device)  # raises UnknownDevice
        return device

    def _subscribe(self, msg: dict[str, Any]) -> None:
        device = self._device(msg)
        names = self._names(msg)
        safely = msg["action"] == "subscribeSafely"
        summary: dict[str, Any] = {
            "type": msg["action"],
            "action": msg["action"],
            "device": device,
            "subscribed": [],
            "already_subscribed": [],
            "pending": [],
            "failed": [],
        }
        snapshots: list[str] = []
        for name in names:
            try:
                outcome = self.hub.subscribe(self, device, name, safely=safely)
            except HubError as exc:
                summary["failed"].append({"sensor": name, "code": exc.code, "error": str(exc)})
                continue
            summary[outcome].append(name)
            if outcome != "pending":
                snapshots.extend(self.hub.snapshot(device, name))
        if len(names) == 1 and summary["failed"]:
            # A single failed target is an error, as for any other bad input.
            failure = summary["failed"][0]
            self._error(failure["error"], failure["code"], msg, device=device, sensor=names[0])
            return
        self._send(summary, msg)
        for text in snapshots:
            self.push(text)

    def _auth(self, msg: dict[str, Any]) -> None:
        """``{"action": "auth", "token": ...}``: the token for this socket's changes."""
        token = msg.get("token")
        guard = guard_of(self.settings)
        if not isinstance(token, str) or not guard.token_ok(token):
            # A failed auth drops what an earlier one granted: the socket is unauthenticated.
            self._token = None
            what = 'missing token (give "token")' if token is None else "wrong token"
            if token is not None and not isinstance(token, str):
                what = "token must be a string"
            log.warning("websocket from %s: %s", self.request.remote_ip, what)
            self._error(what, "unauthorized", msg)
            return
        self._token = token
        answer: dict[str, Any] = {"type": "auth", "action": "auth", "ok": True}
        user = guard.users.by_token(token) if guard.users is not None else None
        if user is not None:
            # Who the socket now acts as, so a user sees which token they gave.
            answer.update(user=user.name, role=str(user.role))
        self._send(answer, msg)

    def _actions(self) -> list[str]:
        """The actions this socket takes: ``auth`` too when changes need a token."""
        return [*ACTIONS, "auth"] if guard_of(self.settings).guarded else list(ACTIONS)

    def _unsubscribe(self, msg: dict[str, Any]) -> None:
        device = self._device(msg)
        names = self._names(msg)
        summary: dict[str, Any] = {
            "type": "unsubscribe",
            "action": "unsubscribe",
            "device": device,
            "unsubscribed": [],
            "not_subscribed": [],
        }
        for name in names:
            done = self.hub.unsubscribe(self, device, name)
            summary["unsubscribed" if done else "not_subscribed"].append(name)
        self._send(summary, msg)

    def _set(self, msg: dict[str, Any]) -> None:
        device = self._device(msg)
        request = msg.get("request")
        if not isinstance(request, str):
            raise BadMessage("give 'request' (a request name)")
        if "args" in msg:
            args = msg["args"]
            if not isinstance(args, list):
                args = [args]
        elif "value" in msg:
            args = [msg["value"]]
        else:
            args = []
        timeout = msg.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise BadMessage("'timeout' must be a positive number of seconds")
        self.hub.request(device, request)  # unknown request: an error now, not later
        guard = guard_of(self.settings)
        guard.authorize(self._token)
        user = guard.user_for(self._token, request, args)
        check_request_size(request, args)
        self._spawn(self._do_set(msg, device, request, args, timeout, user))

    async def _do_set(
        self,
        msg: dict[str, Any],
        device: str,
        request: str,
        args: list[Any],
        timeout: float | None,
        user: User | None = None,
    ) -> None:
        try:
            with acting_as(user):  # the gateway's policy decides per user (--redis)
                result = await self.hub.call(device, request, args, timeout)
        except HubError as exc:
            self._error(str(exc), exc.code, msg, device=device, request=request)
            return
        self._send({"type": "set", "action": "set", **result}, msg)

    def _refresh(self, msg: dict[str, Any]) -> None:
        if "device" in msg:
            device = self._device(msg)
            names = self._names(msg, required=False)
            targets = [
                (d, s)
                for d, s in self.hub.subscriptions(self)
                if d == device and (not names or s in names)
            ]
        else:
            targets = self.hub.subscriptions(self)
        self._spawn(self._do_refresh(msg, targets))

    async def _do_refresh(self, msg: dict[str, Any], targets: list[tuple[str, str]]) -> None:
        limit = asyncio.Semaphore(REFRESH_CONCURRENCY)

        async def one(device: str, sensor: str) -> str | None:
            async with limit:
                try:
                    await self.hub.read(device, sensor)
                except HubError as exc:
                    return str(exc)
                return None

        errors = await asyncio.gather(*(one(d, s) for d, s in targets))
        self._send(
            {
                "type": "refresh",
                "action": "refresh",
                "refreshed": [
                    {"device": d, "sensor": s}
                    for (d, s), e in zip(targets, errors, strict=True)
                    if e is None
                ],
                "failed": [
                    {"device": d, "sensor": s, "error": e}
                    for (d, s), e in zip(targets, errors, strict=True)
                    if e is not None
                ],
            },
            msg,
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _target(msg: dict[str, Any]) -> dict[str, Any]:
    """The device/sensor/request fields of `msg` worth echoing in an error."""
    return {k: msg[k] for k in ("device", "sensor", "request") if isinstance(msg.get(k), str)}
