"""A resource's model: its request and sensor objects, built from what the sync found.

The inspecting client reports each sync as :class:`~katcpx.resource.ModelChanges`; the model
turns that into :class:`KATCPRequest` and :class:`KATCPSensor` objects keyed by Python
identifier, carries listeners across sensor re-creation, and sets readings from
``#sensor-status`` informs and ``?sensor-value`` replies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..message import Message
from ._inspecting import ModelChanges
from ._objects import KATCPRequest, KATCPSensor, Listener
from ._types import AttrDict, escape_name

__all__ = ["ResourceModel"]


class ResourceModel:
    """The requests (:attr:`req`) and sensors (:attr:`sensor`) of one resource.

    Parameters
    ----------
    owner_name
        Name of the resource, for log lines.
    logger
        Where malformed sensor informs are logged.
    """

    def __init__(self, owner_name: str, logger: logging.Logger) -> None:
        self._owner_name = owner_name
        self._logger = logger
        #: Exposed requests, by Python identifier.
        self.req = AttrDict()
        #: Sensors, by Python identifier.
        self.sensor = AttrDict()
        self._by_name: dict[str, KATCPSensor] = {}
        # Listeners registered on the resource by identifier, kept across reconnects and
        # for sensors not seen yet.
        self._listener_cache: dict[str, list[Listener]] = {}
        # Listeners registered directly on sensors that the server has since removed.
        self._orphan_listeners: dict[str, list[tuple[Listener, bool]]] = {}

    def apply(
        self,
        changes: ModelChanges,
        make_request: Callable[[dict[str, Any]], KATCPRequest | None],
        make_sensor: Callable[[dict[str, Any]], KATCPSensor],
    ) -> list[str]:
        """Apply a sync's findings.

        Parameters
        ----------
        make_request
            Builds the object of a request description, or None to leave it unexposed.
        make_sensor
            Builds the object of a sensor description.

        Returns
        -------
        list of str
            Python identifiers of the sensors added or re-created.
        """
        for name in changes.requests_removed:
            dict.pop(self.req, escape_name(name), None)
        for name, desc in changes.requests_added.items():
            request = make_request(desc)
            if request is not None:
                self.req[escape_name(name)] = request
        for name in changes.sensors_removed:
            ident = escape_name(name)
            old = dict.pop(self.sensor, ident, None)
            self._by_name.pop(name, None)
            if old is not None:
                self._orphan_listeners[ident] = old.listeners()
        added: list[str] = []
        for name, desc in changes.sensors_added.items():
            ident = escape_name(name)
            sensor = make_sensor(desc)
            old = dict.get(self.sensor, ident)
            carried = old.listeners() if old is not None else self._orphan_listeners.pop(ident, [])
            for listener, reading in carried:
                sensor.register_listener(listener, reading)
            for listener in self._listener_cache.get(ident, ()):
                sensor.register_listener(listener, reading=True)
            if old is not None:
                self._by_name.pop(old.name, None)
            self.sensor[ident] = sensor
            self._by_name[name] = sensor
            added.append(ident)
        return added

    def add_listener(self, ident: str, listener: Listener) -> KATCPSensor | None:
        """Keep `listener` for sensor `ident` (also when re-created); the sensor if known."""
        self._listener_cache.setdefault(ident, []).append(listener)
        sensor: KATCPSensor | None = dict.get(self.sensor, ident)
        if sensor is not None:
            sensor.register_listener(listener, reading=True)
        return sensor

    def sensor_status(self, msg: Message, major: int) -> None:
        """Set the readings a ``#sensor-status`` inform carries (spec 5.1 section 3.5)."""
        args = msg.arguments
        if len(args) < 5:
            return
        raw_ts = args[0]
        try:
            count = int(args[1])
        except ValueError:
            return
        for i in range(count):
            base = 2 + 3 * i
            if base + 2 >= len(args):
                break
            self._set(args[base], raw_ts, args[base + 1], args[base + 2], major)

    def sensor_values(self, informs: Sequence[Message], major: int) -> None:
        """Set the readings of ``#sensor-value`` informs (a ``?sensor-value`` reply's)."""
        for inform in informs:
            a = inform.arguments
            if len(a) >= 5:
                self._set(a[2], a[0], a[3], a[4], major)

    def _set(self, name: bytes, timestamp: bytes, status: bytes, value: bytes, major: int) -> None:
        sensor = self._by_name.get(name.decode("utf-8", "replace"))
        if sensor is None:
            return
        try:
            sensor.set_formatted(timestamp, status, value, major)
        except ValueError as exc:
            self._logger.warning(
                "%s: bad reading for sensor %s: %s", self._owner_name, sensor.name, exc
            )
