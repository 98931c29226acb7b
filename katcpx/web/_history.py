"""Sensor history: ``GET /api/devices/<device>/sensors/<sensor>/history``.

Two stores answer the same query: :class:`~katcpx.web._ring.RingHistory`, an in-process ring
buffer per sensor that the embedded hub fills with the readings of subscribed sensors (the
default, no Redis),
and the Redis streams written by ``katcpx-gateway`` (see
:class:`katcpx.web._redis_source.RedisSource`). Both implement :class:`HistoryStore`.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import tornado.web

from ._hub import HubError, dumps, jsonable


class BadParameter(HubError):
    """A bad ``since``/``until``/``limit`` of a history query (HTTP 400, both modes)."""

    code = "bad_parameter"
    http_status = 400


__all__ = [
    "BadParameter",
    "DEFAULT_LIMIT",
    "OPENAPI_PATH",
    "HistoryHandler",
    "HistoryStore",
    "MAX_LIMIT",
    "parse_range",
]

#: Readings returned when the query gives no ``limit``.
DEFAULT_LIMIT = 1000
#: Most readings one query returns.
MAX_LIMIT = 100_000


def _query(name: str, description: str, kind: str = "number") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind},
    }


#: The endpoint's entry in the OpenAPI document (see :func:`katcpx.web._rest.openapi_document`).
OPENAPI_PATH: dict[str, Any] = {
    "get": {
        "summary": "Readings of a sensor in a time range (ring buffer, or Redis streams)",
        "operationId": "sensorHistory",
        "parameters": [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in ("device", "sensor")
        ]
        + [
            _query("since", "Earliest reading timestamp (s since the Unix epoch)"),
            _query("until", "Latest reading timestamp (s since the Unix epoch)"),
            _query("limit", f"Most readings, the latest (default {DEFAULT_LIMIT})", "integer"),
        ],
        "responses": {
            "200": {
                "description": "{device, sensor, source, readings: [{timestamp, value, "
                "status, received}]} in timestamp order"
            },
            "400": {"description": "Bad parameter"},
            "404": {"description": "Unknown device or sensor"},
            "503": {"description": "Device not synced, or Redis unreachable"},
        },
    }
}


class HistoryStore(Protocol):
    """Something that answers history queries."""

    async def query(
        self, device: str, sensor: str, since: float, until: float, limit: int
    ) -> list[dict[str, Any]]:
        """Readings of a sensor with ``since <= timestamp <= until``, in timestamp order.

        At most `limit` readings: the latest to arrive in the range. Each reading is a dict with
        ``timestamp``, ``value``, ``status`` and ``received``.
        """


def _number(handler: tornado.web.RequestHandler, name: str, default: float) -> float:
    text = handler.get_query_argument(name, "")
    if text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadParameter(f"query parameter {name!r}: {text!r} is not a number") from None
    if math.isnan(value):
        raise BadParameter(f"query parameter {name!r} may not be NaN")
    return value


def parse_range(handler: tornado.web.RequestHandler) -> tuple[float, float, int]:
    """``since``, ``until`` (seconds since the Unix epoch) and ``limit`` of a history query.

    Missing ``since``/``until`` are open ends; a missing ``limit`` is :data:`DEFAULT_LIMIT`.

    Raises
    ------
    BadParameter
        If a parameter is not a number, ``limit`` is not an integer in 1..:data:`MAX_LIMIT`,
        or ``since`` is after ``until``.
    """
    since = _number(handler, "since", -math.inf)
    until = _number(handler, "until", math.inf)
    limit_f = _number(handler, "limit", DEFAULT_LIMIT)
    if not math.isfinite(limit_f) or limit_f != int(limit_f):
        raise BadParameter(f"query parameter 'limit' must be an integer, not {limit_f}")
    limit = int(limit_f)
    if not 1 <= limit <= MAX_LIMIT:
        raise BadParameter(f"query parameter 'limit' must be in 1..{MAX_LIMIT}, not {limit}")
    if since > until:
        raise BadParameter(f"'since' ({since}) is after 'until' ({until})")
    return since, until, limit


class HistoryHandler(tornado.web.RequestHandler):
    """``GET /api/devices/{device}/sensors/{sensor}/history?since=&until=&limit=``.

    Answers ``{"device", "sensor", "source", "readings": [...]}``, readings oldest first.
    Errors are JSON ``{"error", "code"}``: 400 for a bad parameter, 404 for an unknown device
    or sensor, 503 when the store cannot be reached.
    """

    def initialize(self, hub: Any) -> None:
        """Called by tornado with the handler's keyword arguments from the application."""
        self.hub = hub

    def set_default_headers(self) -> None:
        """Answers are JSON and never cached."""
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    async def get(self, device: str, sensor: str) -> None:
        """Answer one history query."""
        try:
            since, until, limit = parse_range(self)
            name = self.hub.sensor(device, sensor).name
            store: HistoryStore = self.hub.history
            readings = await store.query(device, name, since, until, limit)
            for reading in readings:
                reading["value"] = jsonable(reading["value"])
        except HubError as exc:
            self.set_status(exc.http_status)
            self.finish(dumps({"error": str(exc), "code": exc.code}))
            return
        self.finish(
            dumps(
                {
                    "device": device,
                    "sensor": name,
                    "source": getattr(store, "source", "memory"),
                    "readings": readings,
                }
            )
        )
