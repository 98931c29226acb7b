"""JSON of the web tools' messages: values made JSON-safe, compact text, sensor ``meta``."""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from typing import Any

from ..resource import KATCPSensor

__all__ = ["NUMERIC_TYPES", "dumps", "jsonable", "sensor_meta"]

#: Sensor types whose values the dashboard can plot.
NUMERIC_TYPES = frozenset({"integer", "float", "timestamp"})


def jsonable(value: Any) -> Any:
    """Convert a sensor value or request argument to something :func:`json.dumps` accepts.

    Non-finite floats become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``
    (which JavaScript's ``Number()`` parses back), since JSON has no literal for them.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    enum_value = getattr(value, "value", None)
    if isinstance(value, Hashable) and isinstance(enum_value, (str, int)):
        return str(getattr(value, "name", enum_value)).lower()
    return str(value)


def dumps(obj: dict[str, Any]) -> str:
    """Compact JSON of a message whose values went through :func:`jsonable`."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def sensor_meta(device: str, sensor: KATCPSensor) -> dict[str, Any]:
    """The ``meta`` message of a sensor: its type, units, description and type params."""
    return {
        "type": "meta",
        "device": device,
        "sensor": sensor.name,
        "sensor_type": sensor.type,
        "units": sensor.units,
        "description": sensor.description,
        "params": [p.decode("utf-8", "replace") for p in sensor.formatted_params],
        "numeric": sensor.type in NUMERIC_TYPES,
    }
