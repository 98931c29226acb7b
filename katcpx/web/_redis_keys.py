"""The Redis layout shared by ``katcpx-gateway`` (writer) and ``katcpx-web --redis`` (reader).

Every key starts with a prefix (``katcpx`` unless configured), so several sites can share
one Redis. ``D`` below is a device name as ``katcpx-web`` names it.

========================== ======== =============================================================
key                        type     content
========================== ======== =============================================================
``P:devices``              hash     D -> the ``device`` message (JSON) of the web protocol
``P:dev:D:readings``       stream   one entry per reading: ``s`` (sensor name) and ``j`` (the
                                    ``update`` message, JSON), bounded by length and/or age
``P:dev:D:values``         hash     sensor -> its latest ``update`` message (JSON)
``P:dev:D:sensors``        hash     sensor -> its ``meta`` message (type, units, description,
                                    params; JSON)
``P:dev:D:requests``       hash     request -> ``{"description", "timeout_hint"}`` (JSON)
``P:events``               pub/sub  ``device`` messages and ``{"type": "interface-changed",
                                    "device": D}``
``P:gateway``              string   the gateway's heartbeat (JSON status), expiring after
                                    :data:`GATEWAY_TTL` seconds: absent means no gateway
``P:control``              list     control requests from web instances (JSON, LPUSH/BRPOP)
``P:reply:ID``             list     the reply to control request ID (JSON), expiring
========================== ======== =============================================================

This module holds names and encodings only, so that both sides agree on them, and
:func:`redact_url`, how both show a Redis URL; it imports no Redis client.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._hub import jsonable

__all__ = [
    "DEFAULT_PREFIX",
    "GATEWAY_TTL",
    "HEARTBEAT_INTERVAL",
    "Keys",
    "redact_url",
    "update_text",
    "value_json",
]

#: Prefix of every key unless configured.
DEFAULT_PREFIX = "katcpx"
#: Seconds after which the gateway's heartbeat key expires unless refreshed: several
#: heartbeats, so that a gateway busy for a moment is not taken for gone.
GATEWAY_TTL = 5.0
#: Seconds between the gateway's heartbeats.
HEARTBEAT_INTERVAL = 1.0


def redact_url(url: str) -> str:
    """`url` with its password (``redis://user:PASSWORD@host``) replaced by ``***``.

    Every Redis URL shown to a client or written to a log goes through this, so a password
    in ``--redis`` never leaves the process. A URL that cannot be parsed is shown as
    ``<unparsable URL>`` rather than risk showing its secret.
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<unparsable URL>"


class Keys:
    """Key names under one prefix.

    Parameters
    ----------
    prefix
        First part of every key; must not be empty or contain ``:``-less whitespace.

    Raises
    ------
    ValueError
        If `prefix` is empty or contains whitespace.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"bad Redis key prefix {prefix!r}: empty or with whitespace")
        self.prefix = prefix
        self.devices = f"{prefix}:devices"
        self.events = f"{prefix}:events"
        self.gateway = f"{prefix}:gateway"
        self.control = f"{prefix}:control"

    def readings(self, device: str) -> str:
        """The stream of `device`'s readings."""
        return f"{self.prefix}:dev:{device}:readings"

    def values(self, device: str) -> str:
        """The hash of `device`'s latest readings."""
        return f"{self.prefix}:dev:{device}:values"

    def sensors(self, device: str) -> str:
        """The hash of `device`'s sensor metadata."""
        return f"{self.prefix}:dev:{device}:sensors"

    def requests(self, device: str) -> str:
        """The hash of `device`'s request metadata."""
        return f"{self.prefix}:dev:{device}:requests"

    def reply(self, request_id: str) -> str:
        """The list that receives the reply to control request `request_id`."""
        return f"{self.prefix}:reply:{request_id}"


def value_json(value: Any) -> str:
    """JSON text of a sensor value, as the web protocol sends it.

    Non-finite floats become ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` as in
    :func:`katcpx.web._hub.jsonable`; bytes are decoded as UTF-8; enums become their lower
    case name.
    """
    # The common types first: this runs for every reading the gateway carries.
    kind = type(value)
    if kind is float:
        if math.isfinite(value):
            return repr(value)
        return '"NaN"' if math.isnan(value) else ('"Infinity"' if value > 0 else '"-Infinity"')
    if kind is int:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is str:
        return json.dumps(value)
    return json.dumps(jsonable(value), separators=(",", ":"), allow_nan=False)


def update_text(
    device_json: str,
    sensor_json: str,
    value: str,
    status: str,
    timestamp: float,
    received: float,
    connected: bool = True,
) -> str:
    """The ``update`` message of a reading, as JSON text, built without a JSON encoder.

    Parameters
    ----------
    device_json, sensor_json
        Device and sensor names already JSON encoded (``json.dumps(name)``).
    value
        The value's JSON (:func:`value_json`).
    status
        Sensor status name (``nominal``, ``unreachable``, ...).
    timestamp, received
        Reading and receive times, seconds since the Unix epoch.
    connected
        Whether the device is connected.
    """
    return (
        f'{{"type":"update","device":{device_json},"sensor":{sensor_json},"value":{value},'
        f'"status":"{status}","timestamp":{float(timestamp)!r},"received":{float(received)!r},'
        f'"connected":{"true" if connected else "false"}}}'
    )
