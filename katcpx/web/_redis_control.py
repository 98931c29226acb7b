"""Control requests of ``katcpx-web --redis``, sent to ``katcpx-gateway`` through Redis.

The request (JSON) goes onto the ``P:control`` list with a fresh reply key; the gateway
answers on that key (protocol in :mod:`katcpx.gateway._control`). With no gateway the request
fails at once with :class:`GatewayUnavailable`, and so does a request no gateway answers in
its timeout plus :data:`CONTROL_GRACE`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from redis.exceptions import RedisError

from ._hub import HubError
from ._redis_keys import Keys

__all__ = [
    "CONTROL_GRACE",
    "WATCH_TIMEOUT",
    "GatewayChecksNoUsers",
    "GatewayUnavailable",
    "RedisUnavailable",
    "RemoteError",
    "control",
]

#: Seconds a control request may wait beyond its own timeout for the gateway's answer.
CONTROL_GRACE = 2.0
#: Seconds a Redis call may take before Redis counts as unreachable.
WATCH_TIMEOUT = 5.0


class GatewayUnavailable(HubError):
    """No ``katcpx-gateway`` is serving this Redis, or Redis is unreachable."""

    code = "gateway_unavailable"
    http_status = 503


class RedisUnavailable(GatewayUnavailable):
    """Redis has not been reachable since this web instance started: it knows no devices."""

    code = "redis_unavailable"


class RemoteError(HubError):
    """An error the gateway answered with; keeps its code and HTTP status."""

    def __init__(self, message: str, code: str, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class GatewayChecksNoUsers(HubError):
    """This web instance has ``--users`` but the gateway checks no users: control refused."""

    code = "gateway_checks_no_users"
    http_status = 503


async def control(
    redis: Any,
    keys: Keys,
    url: str,
    msg: dict[str, Any],
    timeout: float,
    principal: Any,
    require_users: bool = False,
) -> dict[str, Any]:
    """Send control request `msg` for `principal` and wait for the gateway's answer.

    Parameters
    ----------
    redis
        A redis-py asyncio client without a socket timeout (the answer is awaited with
        ``BRPOP``).
    keys, url
        Key names, and the URL for messages.
    msg
        ``action``, ``device``, ``request``/``sensor``, ``args``, ``timeout``.
    timeout
        Seconds the request may take on the device.
    principal
        Who the request is for (:func:`katcpx.web._users.principal_of`), or None.
    require_users
        This web instance has ``--users``: its users' roles are checked by the gateway only,
        so a ``call`` is refused unless the gateway's heartbeat says ``checks_users``
        (reading stays open, as everywhere).

    Returns
    -------
    dict
        The gateway's result.

    Raises
    ------
    GatewayUnavailable
        No gateway, Redis unreachable, or no answer in time.
    RemoteError
        The gateway answered with an error (unknown name, device down, forbidden).
    GatewayChecksNoUsers
        `require_users` and the gateway was started without ``--users``.
    """
    request_id = uuid.uuid4().hex
    reply_key = keys.reply(request_id)
    text = json.dumps({**msg, "id": request_id, "reply": reply_key, "principal": principal})
    try:
        heartbeat = await redis.get(keys.gateway)
        if heartbeat is None:
            raise GatewayUnavailable(f"no katcpx-gateway is writing to Redis at {url}")
        if require_users and msg.get("action") != "read" and not _checks_users(heartbeat):
            raise GatewayChecksNoUsers(
                f"?{msg.get('request')} refused: this katcpx-web has --users but the "
                f"katcpx-gateway at {url} checks no users (start it with the same --users "
                "file); without that nobody would check this user's role"
            )
        await redis.lpush(keys.control, text)
        popped = await asyncio.wait_for(
            redis.brpop([reply_key], timeout=timeout + CONTROL_GRACE),
            timeout + CONTROL_GRACE + WATCH_TIMEOUT,
        )
        if popped is None:
            taken = not await redis.lrem(keys.control, 1, text)
            raise GatewayUnavailable(
                "the katcpx-gateway took the request but did not answer within "
                f"{timeout + CONTROL_GRACE} s"
                if taken
                else f"no katcpx-gateway took the request within {timeout + CONTROL_GRACE} s"
            )
    except (RedisError, OSError, asyncio.TimeoutError) as exc:
        raise GatewayUnavailable(f"Redis at {url} is unreachable: {exc!r}") from None
    answer = json.loads(popped[1])
    if not answer.get("ok"):
        raise RemoteError(
            str(answer.get("error")),
            str(answer.get("code", "error")),
            int(answer.get("http_status", 400)),
        )
    result: dict[str, Any] = answer["result"]
    return result


def _checks_users(heartbeat: bytes) -> bool:
    try:
        status = json.loads(heartbeat)
    except ValueError:
        return False
    return isinstance(status, dict) and status.get("checks_users") is True
