"""How fresh a cached sensor reading is: its age, and whether it is stale.

katcpx-web keeps the latest reading of every sensor of every device. A reading is only
current while the device samples the sensor for the hub (a subscription whose strategy is
set), or just after it was read with ``?sensor-value``. Anything else is the last value
seen, possibly minutes old, and is served marked stale with its age, so that no client
takes it for the present value.
"""

from __future__ import annotations

import time

__all__ = ["FRESH_FOR", "freshness"]

#: Seconds a reading fetched with ``?sensor-value`` counts as current without sampling.
FRESH_FOR = 1.0


def freshness(
    received: float, sampled_since: float | None, connected: bool, now: float | None = None
) -> dict[str, float | bool | None]:
    """The ``age`` (seconds since it was received; None: no reading) and ``stale`` fields.

    Parameters
    ----------
    received
        When the hub received the reading (seconds since the epoch; 0: never).
    sampled_since
        When the hub's sampling strategy on the sensor was requested (None: not sampled).
    connected
        Whether the device is connected.
    now
        The current time (default: ``time.time()``).
    """
    if received <= 0:
        return {"age": None, "stale": True}
    now = time.time() if now is None else now
    age = max(0.0, now - received)
    live = connected and sampled_since is not None and received >= sampled_since
    return {"age": round(age, 3), "stale": not (live or (connected and age <= FRESH_FOR))}
