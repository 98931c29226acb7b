"""Which browser sinks are attached to a sensor source, and what each subscribed to.

Shared by :class:`~katcpx.web._hub.DeviceHub` (devices directly) and
:class:`~katcpx.web._redis_source.RedisSource` (through a gateway): the bookkeeping is the
same, only what a subscription costs differs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SinkRegistry"]

Sink = Any


class SinkRegistry:
    """Attached sinks and their ``(device, sensor)`` subscriptions.

    Subclasses provide ``unsubscribe(sink, device, sensor)``, which must drop the pair from
    :attr:`_sinks` (and release whatever the subscription holds).
    """

    def __init__(self) -> None:
        self._sinks: dict[Sink, set[tuple[str, str]]] = {}

    def unsubscribe(self, sink: Sink, device: str, sensor: str) -> bool:
        raise NotImplementedError

    def attach(self, sink: Sink) -> None:
        """Start sending device state changes to `sink`."""
        self._sinks.setdefault(sink, set())

    def detach(self, sink: Sink) -> None:
        """Drop `sink` and all its subscriptions."""
        for device, sensor in list(self._sinks.get(sink, ())):
            self.unsubscribe(sink, device, sensor)
        self._sinks.pop(sink, None)

    def sinks(self) -> list[Sink]:
        """The attached sinks."""
        return list(self._sinks)

    def subscriptions(self, sink: Sink) -> list[tuple[str, str]]:
        """``(device, sensor)`` pairs `sink` is subscribed to."""
        return sorted(self._sinks.get(sink, ()))
