"""REST handlers: devices, sensors and requests as JSON, described by an OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import tornado.web

from .._version import __version__
from ._auth import bearer, check_request_size, guard_of, loads
from ._history import OPENAPI_PATH as HISTORY_PATH
from ._hub import HubError, dumps, jsonable
from ._source import SensorSource
from ._users import acting_as

__all__ = [
    "DeviceHandler",
    "DevicesHandler",
    "NotFoundHandler",
    "OpenAPIHandler",
    "RequestHandler",
    "RequestsHandler",
    "SensorHandler",
    "SensorsHandler",
    "openapi_document",
    "parse_parameters",
    "request_info",
    "sensor_info",
]


def parse_parameters(doc: str) -> list[dict[str, Any]]:
    """Parameters of a request from the numpy-style ``Parameters`` section of its help.

    Parameters
    ----------
    doc
        The ``?help`` text of a request.

    Returns
    -------
    list of dict
        One ``{"name", "type", "description", "optional"}`` per parameter; empty when the
        help has no such section.
    """
    lines = doc.splitlines()
    start = None
    for i in range(len(lines) - 1):
        underline = lines[i + 1].strip()
        if lines[i].strip() == "Parameters" and underline and set(underline) == {"-"}:
            start = i + 2
            break
    if start is None:
        return []
    params: list[dict[str, Any]] = []
    base: int | None = None
    i = start
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if base is None:
            base = indent
        if indent <= base:
            following = lines[i].strip() if i < len(lines) else ""
            if following and set(following) == {"-"}:
                break  # the next section's header
            if indent < base:
                break
            name, _, type_text = line.strip().partition(":")
            params.append(
                {
                    "name": name.strip(),
                    "type": type_text.strip(),
                    "description": "",
                    "optional": "optional" in type_text or "default" in type_text,
                }
            )
        elif params:
            text = params[-1]["description"]
            params[-1]["description"] = f"{text} {line.strip()}".strip()
    return params


def sensor_info(hub: SensorSource, device: str, sensor: Any) -> dict[str, Any]:
    """A sensor's description and its latest known reading (``received`` 0: none yet).

    ``age`` and ``stale`` say whether the reading is current (see :mod:`.freshness`).
    """
    reading = sensor.reading
    connected = hub.device_message(device).get("connected", False)
    return {
        "device": device,
        "name": sensor.name,
        "type": sensor.type,
        "units": sensor.units,
        "description": sensor.description,
        "params": [p.decode("utf-8", "replace") for p in sensor.formatted_params],
        "numeric": sensor.type in ("integer", "float", "timestamp"),
        "value": jsonable(reading.value),
        "status": reading.status,
        "timestamp": reading.timestamp,
        "received": reading.received_timestamp,
        **hub.freshness(device, sensor.name, reading.received_timestamp, connected),
        "subscribers": hub.subscriber_count(device, sensor.name),
    }


#: reStructuredText inline markup in help texts: ``literal``, :role:`text`, `text`.
_RST_INLINE = re.compile(r"(?::[\w-]+:)?``?([^`]+)``?")


def plain_text(text: str) -> str:
    """`text` without reStructuredText inline markup (``#log`` reads as #log).

    Help texts are docstrings; the dashboard shows their first line as plain text.
    """
    return _RST_INLINE.sub(r"\1", text)


def request_info(device: str, request: Any) -> dict[str, Any]:
    """A request's name, help text, one-line summary, timeout hint and parameters."""
    description = request.description
    return {
        "device": device,
        "name": request.name,
        "description": description,
        "summary": plain_text(description.strip().split("\n", 1)[0]),
        "timeout_hint": request.timeout_hint,
        "parameters": parse_parameters(description),
    }


#: Most stale readings a sensor list reads afresh before answering.
REFRESH_LIMIT = 200


class _JSONHandler(tornado.web.RequestHandler):
    """Base: JSON bodies, JSON errors, hub errors mapped to HTTP statuses."""

    hub: SensorSource

    def initialize(self, hub: SensorSource) -> None:
        """Called by tornado with the handler's keyword arguments from the application."""
        self.hub = hub

    def set_default_headers(self) -> None:
        """Answers are JSON and never cached (they are live values)."""
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def send(self, obj: Any, status: int = 200) -> None:
        """Write `obj` as the JSON body."""
        self.set_status(status)
        self.finish(json.dumps(obj, separators=(",", ":"), allow_nan=False))

    def fail(self, status: int, code: str, error: str) -> None:
        """Answer with an error body ``{"error", "code"}``."""
        self.send({"error": error, "code": code}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are JSON too, including tornado's own (404, 405, ...)."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, HubError):
            self.set_status(exc.http_status)
            self.finish(dumps({"error": str(exc), "code": exc.code}))
            return
        reason = self._reason
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        self.finish(dumps({"error": reason, "code": f"http_{status_code}"}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, HubError):
            # An expected outcome (unknown name, device down): no traceback in the log.
            if not self._finished:
                self.send({"error": str(e), "code": e.code}, e.http_status)
            return
        super()._handle_request_exception(e)


class DevicesHandler(_JSONHandler):
    """``GET /api/devices``: every device with its connection state."""

    def get(self) -> None:
        """List the devices."""
        check = getattr(self.hub, "check_loaded", None)  # katcpx-web --redis only
        if check is not None:
            check()  # an unread Redis is a 503, not an empty site
        self.send([self.hub.device_message(n) for n in self.hub.device_names])


class DeviceHandler(_JSONHandler):
    """``GET /api/devices/{device}``: one device."""

    def get(self, device: str) -> None:
        """Describe one device."""
        self.send(self.hub.device_message(device))


class SensorsHandler(_JSONHandler):
    """``GET /api/devices/{device}/sensors`` and ``GET /api/sensors``, with ``?filter=``."""

    async def get(self, device: str | None = None) -> None:
        """List the sensors whose names match ``filter`` (a regular expression).

        Readings the hub does not sample are read afresh first when there are at most
        :data:`REFRESH_LIMIT` of them; beyond that, or when a read fails, they are served
        with ``"stale": true`` and their ``age``.
        """
        pattern = self.get_query_argument("filter", "")
        if device is None:
            wanted = self.get_query_argument("device", None)
            devices = [wanted] if wanted else self.hub.device_names
        else:
            devices = [device]
        pairs = [(d, s) for d in devices for s in self.hub.sensors(d, pattern)]
        # Read afresh whatever the device does not sample for the hub, even if just read.
        stale = [(d, s) for d, s in pairs if self.hub.sampled_since(d, s.name) is None]
        if 0 < len(stale) <= REFRESH_LIMIT:
            await asyncio.gather(
                *(self.hub.read(d, s.name) for d, s in stale), return_exceptions=True
            )
        self.send([sensor_info(self.hub, d, s) for d, s in pairs])


class SensorHandler(_JSONHandler):
    """``GET /api/devices/{device}/sensors/{sensor}``: read a sensor."""

    async def get(self, device: str, sensor: str) -> None:
        """Read afresh with ``?sensor-value``, or with ``?cached=1`` return the latest known."""
        obj = self.hub.sensor(device, sensor)
        if self.get_query_argument("cached", "0") not in ("0", "", "false"):
            self.send(sensor_info(self.hub, device, obj))
            return
        await self.hub.read(device, sensor)
        self.send(sensor_info(self.hub, device, obj))


class RequestsHandler(_JSONHandler):
    """``GET /api/devices/{device}/requests``: the requests, from ``?help``."""

    def get(self, device: str) -> None:
        """List the requests."""
        self.send([request_info(device, r) for r in self.hub.requests(device)])


class RequestHandler(_JSONHandler):
    """``GET``/``POST /api/devices/{device}/requests/{request}``: describe or call."""

    def get(self, device: str, request: str) -> None:
        """Describe a request."""
        self.send(request_info(device, self.hub.request(device, request)))

    async def post(self, device: str, request: str) -> None:
        """Call a request with body ``{"args": [...], "timeout": seconds}`` (both optional).

        A reply, even ``fail``, is a 200 answer with ``ok`` telling which; a timeout is 504.
        """
        self.hub.request(device, request)
        guard_of(self.settings).authorize_http(self)
        body: Any = {}
        if self.request.body.strip():
            body = loads(self.request.body)
        if isinstance(body, list):
            body = {"args": body}
        if not isinstance(body, dict):
            self.fail(400, "bad_message", "body must be a JSON object")
            return
        args = body.get("args", [])
        if not isinstance(args, list):
            args = [args]
        timeout = body.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            self.fail(400, "bad_message", "timeout must be a positive number of seconds")
            return
        check_request_size(request, args)
        user = guard_of(self.settings).user_for(bearer(self), request, args)
        with acting_as(user):  # the gateway's policy decides per user (--redis)
            result = await self.hub.call(device, request, args, timeout)
        self.send(result, 504 if result["status"] == "timeout" else 200)


class NotFoundHandler(_JSONHandler):
    """Any other path: a JSON 404."""

    def prepare(self) -> None:
        """Refuse every method."""
        raise tornado.web.HTTPError(404, "no such path: %s", self.request.path)


class OpenAPIHandler(_JSONHandler):
    """``GET /api/openapi.json``: the OpenAPI 3 document of this API."""

    def get(self) -> None:
        """Return the document, with this server as its base URL."""
        doc = openapi_document()
        doc["servers"] = [{"url": f"{self.request.protocol}://{self.request.host}"}]
        self.send(doc)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _param(name: str, where: str, description: str, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 description of the REST API (and a note on the websocket)."""
    device = _param("device", "path", "Device name, as configured")
    sensor = _param("sensor", "path", "KATCP sensor name")
    request = _param("request", "path", "KATCP request name")
    filt = _param("filter", "query", "Regular expression searched in sensor names", False)
    err = {
        "404": _json(_ref("Error"), "Unknown device, sensor or request"),
        "503": _json(_ref("Error"), "Device not connected"),
    }
    scalar = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "katcpx-web",
            "version": __version__,
            "description": (
                "KATCP devices over HTTP. Live updates: websocket at /api/ws with JSON "
                "actions subscribe, subscribeSafely, unsubscribe, set and refresh "
                "(see docs/web.md)."
            ),
        },
        "paths": {
            "/api/devices": {
                "get": {
                    "summary": "List devices and their connection state",
                    "operationId": "listDevices",
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Device")}, "Devices")
                    },
                }
            },
            "/api/devices/{device}": {
                "get": {
                    "summary": "Describe a device",
                    "operationId": "getDevice",
                    "parameters": [device],
                    "responses": {"200": _json(_ref("Device"), "The device"), **err},
                }
            },
            "/api/sensors": {
                "get": {
                    "summary": "List the sensors of all devices (or one), filtered",
                    "operationId": "listAllSensors",
                    "parameters": [filt, _param("device", "query", "Only this device", False)],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Sensor")}, "Sensors"),
                        "400": _json(_ref("Error"), "Bad filter"),
                        **err,
                    },
                }
            },
            "/api/devices/{device}/sensors": {
                "get": {
                    "summary": "List a device's sensors, filtered",
                    "operationId": "listSensors",
                    "parameters": [device, filt],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Sensor")}, "Sensors"),
                        "400": _json(_ref("Error"), "Bad filter"),
                        **err,
                    },
                }
            },
            "/api/devices/{device}/sensors/{sensor}": {
                "get": {
                    "summary": "Read a sensor (fresh ?sensor-value unless cached=1)",
                    "operationId": "readSensor",
                    "parameters": [
                        device,
                        sensor,
                        _param("cached", "query", "1: latest known reading, no request", False),
                    ],
                    "responses": {"200": _json(_ref("Sensor"), "The sensor and reading"), **err},
                }
            },
            "/api/devices/{device}/sensors/{sensor}/history": HISTORY_PATH,
            "/api/devices/{device}/requests": {
                "get": {
                    "summary": "List a device's requests (from ?help)",
                    "operationId": "listRequests",
                    "parameters": [device],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Request")}, "Requests"),
                        **err,
                    },
                }
            },
            "/api/devices/{device}/requests/{request}": {
                "get": {
                    "summary": "Describe a request",
                    "operationId": "getRequest",
                    "parameters": [device, request],
                    "responses": {"200": _json(_ref("Request"), "The request"), **err},
                },
                "post": {
                    "summary": "Call a request",
                    "operationId": "callRequest",
                    "parameters": [device, request],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("CallBody")}},
                    },
                    "responses": {
                        "200": _json(_ref("CallResult"), "The reply (ok or fail)"),
                        "400": _json(_ref("Error"), "Bad body"),
                        "504": _json(_ref("CallResult"), "No reply in time"),
                        **err,
                    },
                },
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3 document"}},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "code"],
                    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
                },
                "Device": {
                    "type": "object",
                    "properties": {
                        "device": {"type": "string"},
                        "address": {"type": "string"},
                        "description": {"type": "string"},
                        "state": {"type": "string", "enum": ["disconnected", "syncing", "synced"]},
                        "connected": {"type": "boolean"},
                        "synced": {"type": "boolean"},
                        "sensors": {"type": "integer"},
                        "requests": {"type": "integer"},
                    },
                },
                "Sensor": {
                    "type": "object",
                    "properties": {
                        "device": {"type": "string"},
                        "name": {"type": "string"},
                        "type": {"type": "string"},
                        "units": {"type": "string"},
                        "description": {"type": "string"},
                        "params": {"type": "array", "items": {"type": "string"}},
                        "numeric": {"type": "boolean"},
                        "value": {"nullable": True},
                        "status": {"type": "string"},
                        "timestamp": {"type": "number"},
                        "received": {"type": "number"},
                        "age": {
                            "type": "number",
                            "nullable": True,
                            "description": "seconds since the reading was received",
                        },
                        "stale": {
                            "type": "boolean",
                            "description": "not sampled nor just read: may be out of date",
                        },
                        "subscribers": {"type": "integer"},
                    },
                },
                "Request": {
                    "type": "object",
                    "properties": {
                        "device": {"type": "string"},
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "summary": {"type": "string"},
                        "timeout_hint": {"type": "number", "nullable": True},
                        "parameters": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "type": {"type": "string"},
                                    "description": {"type": "string"},
                                    "optional": {"type": "boolean"},
                                },
                            },
                        },
                    },
                },
                "CallBody": {
                    "type": "object",
                    "properties": {
                        "args": {"type": "array", "items": scalar},
                        "timeout": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                    },
                },
                "CallResult": {
                    "type": "object",
                    "properties": {
                        "device": {"type": "string"},
                        "request": {"type": "string"},
                        "ok": {"type": "boolean"},
                        "status": {
                            "type": "string",
                            "enum": ["ok", "fail", "invalid", "timeout", "error"],
                        },
                        "reply": {"type": "array", "items": {"type": "string"}},
                        "informs": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "string"}},
                        },
                        "error": {"type": "string"},
                        "elapsed": {"type": "number"},
                    },
                },
            }
        },
    }
