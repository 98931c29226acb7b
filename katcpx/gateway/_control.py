"""Control requests from web instances, run by the gateway against the devices.

A web instance pushes a JSON request onto the ``P:control`` list (see
:mod:`katcpx.web._redis_keys`) and waits on its own reply list. The gateway pops requests,
asks the access policy (if one is installed) and runs them with its
:class:`~katcpx.web._hub.DeviceHub`, so the device sees them on the gateway's one
connection.

Request (JSON object): ``id`` (str), ``action`` (``"call"`` or ``"read"``), ``device``,
``request`` (for call) or ``sensor`` (for read), ``args`` (list), ``timeout`` (seconds or
null), ``principal`` (whatever identity the web instance vouches for; null without
authentication) and ``reply`` (the key to push the answer onto).

Answer: ``{"ok": true, "result": {...}}`` with the hub's call result or update message, or
``{"ok": false, "code", "error", "http_status"}``.

The access policy hook
----------------------
``policy(request: ControlRequest)`` is called before a request runs; it may be a coroutine
function. Raising :class:`PermissionError` refuses the request (``code`` ``forbidden``,
HTTP 403) with the exception's text; returning normally allows it. This is where the
security issue's access policy plugs in (``Gateway(policy=...)``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..web._hub import DeviceHub, HubError
from ..web._redis_keys import Keys

__all__ = ["ControlPolicy", "ControlRequest", "ControlServer", "REPLY_TTL"]

log = logging.getLogger("katcpx.gateway")

#: Seconds a reply waits in Redis for a web instance to collect it.
REPLY_TTL = 60


@dataclass(frozen=True)
class ControlRequest:
    """One control request, as the access policy sees it."""

    id: str
    action: str
    device: str
    name: str
    args: tuple[Any, ...]
    timeout: float | None
    principal: Any


#: ``policy(request)``: raise PermissionError to refuse; may be async.
ControlPolicy = Callable[[ControlRequest], "Awaitable[None] | None"]


def reply_key_of(raw: bytes) -> str | None:
    """The reply key of a control request, if one can be read (even from a bad request)."""
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    reply = msg.get("reply") if isinstance(msg, dict) else None
    return reply if isinstance(reply, str) and reply else None


def parse_request(raw: bytes) -> tuple[ControlRequest, str]:
    """Decode one control request; returns it and its reply key.

    Raises
    ------
    ValueError
        If `raw` is not a control request (the text names what is wrong).
    """
    msg = json.loads(raw)
    if not isinstance(msg, dict):
        raise ValueError("a control request must be a JSON object")
    reply = msg.get("reply")
    if not isinstance(reply, str) or not reply:
        raise ValueError("control request without 'reply' key")
    action = msg.get("action")
    if action not in ("call", "read"):
        raise ValueError(f"unknown control action {action!r}")
    name = msg.get("request" if action == "call" else "sensor")
    device = msg.get("device")
    if not isinstance(device, str) or not isinstance(name, str):
        raise ValueError("control request needs 'device' and 'request'/'sensor' strings")
    args = msg.get("args", [])
    timeout = msg.get("timeout")
    if not isinstance(args, list) or not (timeout is None or isinstance(timeout, (int, float))):
        raise ValueError("'args' must be a list and 'timeout' a number or null")
    request = ControlRequest(
        str(msg.get("id", "")), action, device, name, tuple(args), timeout, msg.get("principal")
    )
    return request, reply


class ControlServer:
    """Pops control requests from Redis and answers them.

    Parameters
    ----------
    redis
        A client of its own (popping blocks its connection).
    keys
        Key names.
    hub
        Runs the requests.
    policy
        The access policy hook (see the module docstring); None allows everything.
    pop_timeout
        Seconds each blocking pop waits, which bounds how long :meth:`stop` takes.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        hub: DeviceHub,
        policy: ControlPolicy | None = None,
        pop_timeout: float = 1.0,
    ) -> None:
        # Any: redis-py types replies as bytes-or-str unions; decode_responses is off here.
        self.redis: Any = redis
        self.keys = keys
        self.hub = hub
        self.policy = policy
        self.pop_timeout = pop_timeout
        #: Requests answered, and refused by the policy.
        self.answered = 0
        self.refused = 0
        self._task: asyncio.Future[None] | None = None
        self._stopping = False
        self._running: set[asyncio.Future[Any]] = set()

    def start(self) -> None:
        """Start popping requests on the running loop."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop popping; requests being run are cancelled."""
        self._stopping = True
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: redis-py may swallow a cancellation landing inside one of its calls;
            # the flag ends the loop at its next pop then.
            await asyncio.wait(tasks, timeout=self.pop_timeout + 1.0)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                popped = await self.redis.brpop([self.keys.control], timeout=self.pop_timeout)
            except (RedisError, OSError):
                await asyncio.sleep(self.pop_timeout / 2)  # the writer reports the outage
                continue
            if popped is None:
                continue
            task = asyncio.ensure_future(self._handle(popped[1]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _handle(self, raw: bytes) -> None:
        try:
            request, reply_key = parse_request(raw)
        except ValueError as exc:
            # Not the request itself: it may carry a user's token (its principal).
            log.warning("Bad control request (%d bytes): %s", len(raw), exc)
            key = reply_key_of(raw)
            if key is not None:  # whoever waits on it is told at once, not at its timeout
                bad = {"ok": False, "code": "bad_request", "error": str(exc), "http_status": 400}
                await self._reply(key, bad, "a bad control request")
            return
        answer = await self.answer(request)
        await self._reply(reply_key, answer, f"control request {request.id}")

    async def _reply(self, key: str, answer: dict[str, Any], what: str) -> None:
        """Push `answer` onto `key`; once more on a fresh connection if the pooled one was
        stale (Redis restarted since it was last used)."""
        text = json.dumps(answer, allow_nan=False)
        for attempt in (1, 2):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.lpush(key, text)
                    pipe.expire(key, REPLY_TTL)
                    await pipe.execute()
                return
            except (RedisConnectionError, OSError) as exc:
                if attempt == 2:
                    log.error("Could not send the reply to %s: %s", what, exc)
            except RedisError as exc:
                log.error("Could not send the reply to %s: %s", what, exc)
                return

    async def answer(self, request: ControlRequest) -> dict[str, Any]:
        """Check `request` against the policy, run it, and return the answer."""
        try:
            if self.policy is not None:
                outcome = self.policy(request)
                if inspect.isawaitable(outcome):
                    await outcome
        except PermissionError as exc:
            self.refused += 1
            return {"ok": False, "code": "forbidden", "error": str(exc), "http_status": 403}
        try:
            if request.action == "read":
                result = await self.hub.read(request.device, request.name)
            else:
                result = await self.hub.call(
                    request.device, request.name, request.args, request.timeout
                )
        except HubError as exc:
            return {
                "ok": False,
                "code": exc.code,
                "error": str(exc),
                "http_status": exc.http_status,
            }
        self.answered += 1
        return {"ok": True, "result": result}
