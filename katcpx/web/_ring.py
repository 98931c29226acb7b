"""An in-process ring buffer of recent readings per sensor: history without Redis."""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["RingHistory"]


class RingHistory:
    """The latest `size` readings of each sensor, in memory.

    Parameters
    ----------
    size
        Readings kept per sensor; 0 keeps none.
    """

    #: Named in history answers.
    source = "memory"

    def __init__(self, size: int = 1000) -> None:
        if size < 0:
            raise ValueError(f"history size must be >= 0, not {size}")
        self.size = size
        self._rings: dict[tuple[str, str], deque[tuple[float, Any, str, float]]] = {}

    def record(self, device: str, sensor: str, reading: Any) -> None:
        """Keep `reading` (with ``timestamp``, ``value``, ``status``, ``received_timestamp``)."""
        if not self.size:
            return
        ring = self._rings.get((device, sensor))
        if ring is None:
            ring = self._rings[(device, sensor)] = deque(maxlen=self.size)
        ring.append(
            (reading.timestamp, reading.value, str(reading.status), reading.received_timestamp)
        )

    async def query(
        self, device: str, sensor: str, since: float, until: float, limit: int
    ) -> list[dict[str, Any]]:
        """See :meth:`katcpx.web._history.HistoryStore.query` (values as the sensor holds them)."""
        ring = self._rings.get((device, sensor), ())
        found = [r for r in ring if since <= r[0] <= until][-limit:] if limit > 0 else []
        found.sort(key=lambda r: r[0])  # arrival order may differ from timestamp order
        return [
            {"timestamp": t, "value": v, "status": st, "received": rx} for t, v, st, rx in found
        ]
