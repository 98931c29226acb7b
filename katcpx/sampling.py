"""Sensor sampling strategies for ``?sensor-sampling`` (spec rev 5.1 section 7.1, table 9).

katcp-python's ``katcp.sampling``. The strategies are pure logic. Time comes from a
``clock()`` callable and timers from a :class:`Scheduler` (anything with
``call_at(when, callback)`` returning a handle with ``cancel()``; an asyncio event loop
qualifies). The server's sampling manager supplies both; tests use :class:`ManualScheduler`,
whose clock only moves when told to.

Threading is the caller's job: ``start``, ``cancel``, ``update`` and the timer callbacks must
all run on one thread. A strategy built with ``observe=True`` (the default) attaches itself to
its sensor, so its ``update`` runs in whichever thread sets the sensor; a server whose sensors
are set from other threads builds strategies with ``observe=False`` and forwards updates
itself on its own thread. A strategy bound to a tornado IOLoop (katcp-python's way) crosses
onto it through its :class:`katcpx.crossing.LoopBinding` (``loop_binding``).

Strategy parameters are in the units of the KATCP major version: seconds from v5,
milliseconds before (spec section 1.1). Which strategies exist in which version is
:func:`strategy_exists` (``event-rate`` and ``differential-rate`` are new in v5).

The strategy base, schedulers and basic strategies live in ``_sampling_core.py``, the
differential and rate-limited strategies in ``_sampling_rates.py``; this module is their
API.
"""

from __future__ import annotations

from ._sampling_core import (
    ManualScheduler,
    ManualTimer,
    SampleAuto,
    SampleEvent,
    SampleNone,
    SamplePeriod,
    SampleStrategy,
    SamplingError,
    Scheduler,
    TimerHandle,
    logger,
    strategy_exists,
)
from ._sampling_rates import (
    SampleDifferential,
    SampleDifferentialRate,
    SampleEventRate,
)
from ._sensor_informs import (
    AGE_OF_UNIVERSE,
    format_inform_v4,
    format_inform_v5,
    update_in_ioloop,
)
from .compat import is_bytes, is_text
from .message import Message
from .sensor import Sensor

#: katcp-python ran on Python 2 as well; katcpx does not.
PY2 = False

__all__ = [
    "AGE_OF_UNIVERSE",
    "is_bytes",
    "is_text",
    "logger",
    "Message",
    "Sensor",
    "PY2",
    "format_inform_v4",
    "format_inform_v5",
    "update_in_ioloop",
    "strategy_exists",
    "SamplingError",
    "TimerHandle",
    "Scheduler",
    "ManualScheduler",
    "ManualTimer",
    "SampleStrategy",
    "SampleNone",
    "SampleAuto",
    "SamplePeriod",
    "SampleEvent",
    "SampleDifferential",
    "SampleEventRate",
    "SampleDifferentialRate",
]
