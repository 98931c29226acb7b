"""Sensor history of ``katcpx-web --redis``: read from the gateway's device streams."""

from __future__ import annotations

import json
import math
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ._redis_control import GatewayUnavailable
from ._redis_keys import Keys

__all__ = ["HISTORY_MARGIN", "READ_COUNT", "RedisHistory"]

#: Entries read per XREAD / XREVRANGE call.
READ_COUNT = 5000
#: Seconds by which stream ids (gateway receive time) may lead reading timestamps.
HISTORY_MARGIN = 60.0


class RedisHistory:
    """History from the device streams, by ``XREVRANGE``.

    Stream ids are the gateway's receive times; the range is widened by
    :data:`HISTORY_MARGIN` and then filtered on the readings' own timestamps.
    """

    source = "redis"

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        # Any: redis-py types replies as bytes-or-str unions; decode_responses is off here.
        self.redis: Any = redis
        self.keys = keys

    async def query(
        self, device: str, sensor: str, since: float, until: float, limit: int
    ) -> list[dict[str, Any]]:
        """See :meth:`katcpx.web._history.HistoryStore.query`.

        Raises
        ------
        GatewayUnavailable
            If Redis cannot be reached.
        """
        stream = self.keys.readings(device)
        low = "-" if math.isinf(since) else str(max(int((since - HISTORY_MARGIN) * 1000), 0))
        high = "+" if math.isinf(until) else str(max(int((until + HISTORY_MARGIN) * 1000), 0))
        wanted = sensor.encode()
        found: list[dict[str, Any]] = []
        try:
            while len(found) < limit:
                entries = await self.redis.xrevrange(stream, high, low, count=READ_COUNT)
                for _id, fields in entries:
                    if fields.get(b"s") != wanted:
                        continue
                    msg = json.loads(fields[b"j"])
                    if since <= msg["timestamp"] <= until:
                        found.append(
                            {
                                "timestamp": msg["timestamp"],
                                "value": msg["value"],
                                "status": msg["status"],
                                "received": msg["received"],
                            }
                        )
                        if len(found) >= limit:
                            break
                if len(entries) < READ_COUNT:
                    break
                high = "(" + entries[-1][0].decode()
        except (RedisError, OSError) as exc:
            raise GatewayUnavailable(f"Redis unreachable: {exc}") from None
        found.sort(key=lambda r: r["timestamp"])  # arrival order may differ
        return found
