"""``list_sensors`` of resources and containers: select, optionally refresh, describe."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from ._objects import KATCPSensor
from ._strategies import NO_STRATEGY
from ._types import SensorResultTuple

__all__ = ["list_sensors"]


async def list_sensors(
    parent: Any,
    sensors: dict[str, KATCPSensor],
    filter: str,
    strategy: bool,
    status: str,
    use_python_identifiers: bool,
    tuple: bool,
    refresh: bool,
    prefixed: bool = False,
) -> list[Any]:
    """Implement ``list_sensors`` over `sensors` (keyed by Python identifier).

    With `prefixed` (containers), reported names are ``<resource>.<sensor>`` except for
    aggregate sensors (``agg_*``).
    """
    filter_re = re.compile(filter)
    status_re = re.compile(status) if status else None
    found: list[Any] = []
    selected = [
        (ident, sensors[ident])
        for ident in sorted(sensors)
        if filter_re.search(ident if use_python_identifiers else sensors[ident].name)
        and not (strategy and sensors[ident].sampling_strategy == NO_STRATEGY)
    ]
    if refresh:
        # Pipelined: one round trip for all of them rather than one each.
        await asyncio.gather(*(sensor.get_value() for _, sensor in selected))
    for ident, sensor in selected:
        if status_re is not None and not status_re.search(sensor.reading.status):
            continue
        name = sensor.name
        if prefixed and not name.startswith("agg_"):
            name = f"{sensor.parent_name}.{name}"
        if tuple:
            r = sensor.reading
            found.append(
                (
                    name,
                    r.value,
                    r.timestamp,
                    sensor.type,
                    sensor.units,
                    r.received_timestamp,
                    r.status,
                    sensor.sampling_strategy,
                )
            )
        else:
            found.append(
                SensorResultTuple(
                    object=sensor,
                    name=name,
                    python_identifier=ident,
                    description=sensor.description,
                    type=sensor.type,
                    units=sensor.units,
                    reading=sensor.reading,
                )
            )
    return found
