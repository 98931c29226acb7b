"""Digitiser/correlator: per-channel power spectra updated at a fixed rate.

Every update computes the whole spectrum in a few numpy operations (no per-channel Python), and
each update's noise comes from a generator seeded by ``(model key, update index)``, so the
spectrum of update ``k`` is the same however the simulated time was stepped: a device layer may
call ``advance_to`` as irregularly as it likes. Intermediate updates skipped by a long step are
not computed, only counted.

Arrays handed out are read-only and never modified afterwards (each update makes new ones), so
a consumer may keep a reference while the model moves on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from .base import SensorSpec, SimModel, Status, Thresholds, Value

__all__ = ["Digitiser", "default_bandpass"]


def default_bandpass(n_channels: int, rng: np.random.Generator) -> np.ndarray:
    """Return a bandpass shape in dB: flat top, steep edges, ripple and a few RFI spikes."""
    x = (np.arange(n_channels) + 0.5) / n_channels
    shape = -12.0 * (2 * x - 1) ** 8 + 0.5 * np.sin(2 * np.pi * 7 * x)
    n_rfi = max(1, n_channels // 400)
    shape[rng.choice(n_channels, size=n_rfi, replace=False)] += 15.0
    return shape


class Digitiser(SimModel):
    """Digitiser with ``n_channels`` of power (dB) updated at ``update_rate``.

    Parameters
    ----------
    n_channels
        Number of frequency channels.
    update_rate
        Updates per simulated second; update ``k`` happens at ``start_time + k / rate``.
    bandpass
        Channel gain shape (dB), length ``n_channels``; default :func:`default_bandpass`.
    adc_level
        ADC input level (dBFS); channel powers are ``adc_level + bandpass + noise``.
    noise_db
        Standard deviation (dB) of per-channel noise on each update.
    channel_thresholds
        Channel power (dB) to status; the default flags RFI (WARN > -10 dB), near clipping
        (ERROR > -3 dB), low (WARN < -40 dB) and dead (ERROR < -60 dB).
    dead_level
        Power (dB) a dead channel reads.
    clip_level
        Channel power (dB) ceiling while the ADC clips.
    seed, start_time
        See :class:`~katcpx_devices.models.base.SimModel`.
    """

    FAULTS: ClassVar[Mapping[str, str]] = {
        "adc-overload": (
            "The input rises by option gain_db (default 30 dB): adc-level reads min(level + "
            "gain, 0) dBFS and the ADC clips (adc-clipping True, ERROR); every channel reads "
            "min(power + gain, clip_level) and so is ERROR, from the next update."
        ),
        "dead-channel": (
            "Channels in option channels (indices), or option count channels picked by the "
            "model's rng (default 1), read dead_level (ERROR) from the next update; "
            "re-injecting replaces the set."
        ),
    }
    SENSORS: ClassVar[Mapping[str, SensorSpec]] = {
        "adc-level": SensorSpec("float", "ADC input level", "dBFS"),
        "adc-clipping": SensorSpec("boolean", "ADC is clipping"),
        "update-count": SensorSpec("integer", "Spectra computed since start"),
        "dead-channels": SensorSpec("integer", "Number of dead channels"),
    }
    #: How to expose one channel's power (the device layer makes ``n_channels`` of these).
    CHANNEL_SPEC: ClassVar[SensorSpec] = SensorSpec("float", "Channel power", "dB")

    def __init__(
        self,
        n_channels: int = 4096,
        update_rate: float = 1.0,
        *,
        bandpass: np.ndarray | None = None,
        adc_level: float = -20.0,
        noise_db: float = 0.1,
        channel_thresholds: Thresholds | None = None,
        dead_level: float = -100.0,
        clip_level: float = -1.0,
        seed: int | None = None,
        start_time: float = 0.0,
    ) -> None:
        super().__init__(seed=seed, start_time=start_time)
        if n_channels < 1:
            raise ValueError(f"n_channels must be positive, got {n_channels!r}")
        if not update_rate > 0:
            raise ValueError(f"update_rate must be positive, got {update_rate!r}")
        self.n_channels = int(n_channels)
        self.update_rate = float(update_rate)
        self._epoch = float(start_time)
        if bandpass is None:
            bandpass = default_bandpass(self.n_channels, self.rng)
        bandpass = np.array(bandpass, dtype=float)
        if bandpass.shape != (self.n_channels,):
            raise ValueError(f"bandpass must have shape ({self.n_channels},)")
        bandpass.flags.writeable = False
        self.bandpass = bandpass
        self.input_level = float(adc_level)
        self.noise_db = float(noise_db)
        self.channel_thresholds = channel_thresholds or Thresholds(
            warn_low=-40.0, warn_high=-10.0, error_low=-60.0, error_high=-3.0
        )
        self.dead_level = float(dead_level)
        self.clip_level = float(clip_level)
        # Key for per-update noise generators: drawn once so a seed=None run is still
        # self-consistent.
        self._key = int(self.rng.integers(2**63))
        self._dead = np.zeros(self.n_channels, dtype=bool)
        self._count = 0
        self._compute(0)

    # -- state ------------------------------------------------------------------------------

    @property
    def values(self) -> np.ndarray:
        """Channel powers (dB) of the latest update; read-only, shape ``(n_channels,)``."""
        return self._values

    @property
    def statuses(self) -> np.ndarray:
        """Channel statuses (``int8`` :class:`Status` values) of the latest update."""
        return self._statuses

    @property
    def update_count(self) -> int:
        """Number of updates so far (including the initial one at ``start_time``)."""
        return self._count

    @property
    def last_update(self) -> float:
        """Simulation time of the latest update."""
        return self._epoch + (self._count - 1) / self.update_rate

    @property
    def next_update(self) -> float:
        """Simulation time of the next update; handy for scheduling a real-time driver."""
        return self._epoch + self._count / self.update_rate

    @property
    def adc_gain_db(self) -> float:
        """Extra input level (dB) from an ``adc-overload`` fault (0 without one)."""
        if "adc-overload" in self.faults:
            return float(self.fault_options("adc-overload").get("gain_db", 30.0))
        return 0.0

    @property
    def adc_level(self) -> float:
        """ADC input level (dBFS), at most 0 (full scale)."""
        return min(self.input_level + self.adc_gain_db, 0.0)

    @property
    def adc_clipping(self) -> bool:
        """Whether the input would exceed full scale."""
        return self.input_level + self.adc_gain_db >= 0.0

    @property
    def dead_channels(self) -> np.ndarray:
        """Indices of the channels a ``dead-channel`` fault has killed."""
        return np.flatnonzero(self._dead)

    # -- physics ----------------------------------------------------------------------------

    def _compute(self, index: int) -> None:
        """Compute update number ``index`` (0-based) from the current configuration."""
        noise = np.random.default_rng([self._key, index]).normal(
            0.0, self.noise_db, self.n_channels
        )
        gain = self.adc_gain_db
        values = self.input_level + gain + self.bandpass + noise
        if self.adc_clipping:
            np.minimum(values, self.clip_level, out=values)
        values[self._dead] = self.dead_level
        statuses = self.channel_thresholds.statuses(values)
        values.flags.writeable = False
        statuses.flags.writeable = False
        self._values, self._statuses = values, statuses
        self._count = index + 1

    def _advance(self, dt: float) -> None:
        end = self._time + dt
        # Index of the last update due at or before `end`; the epsilon absorbs the rounding
        # of sums like 0.1 + 0.2 so an update lands on its own tick.
        last = math.floor((end - self._epoch) * self.update_rate + 1e-9)
        if last >= self._count:
            self._compute(last)

    # -- faults -----------------------------------------------------------------------------

    def _fault_started(self, kind: str, options: Mapping[str, Any]) -> None:
        if kind == "adc-overload":
            unknown = set(options) - {"gain_db"}
            if unknown:
                raise ValueError(f"fault 'adc-overload' does not take {sorted(unknown)}")
            return
        unknown = set(options) - {"channels", "count"}
        if unknown or ("channels" in options and "count" in options):
            raise ValueError("fault 'dead-channel' takes either channels or count")
        if "channels" in options:
            chans = np.fromiter((int(c) for c in options["channels"]), dtype=np.int64)
            if chans.size and (chans.min() < 0 or chans.max() >= self.n_channels):
                raise ValueError(f"dead channels must be in [0, {self.n_channels})")
        else:
            count = int(options.get("count", 1))
            if not 0 <= count <= self.n_channels:
                raise ValueError(f"dead channel count must be in [0, {self.n_channels}]")
            chans = self.rng.choice(self.n_channels, size=count, replace=False)
        self._dead = np.zeros(self.n_channels, dtype=bool)
        self._dead[chans] = True

    def _fault_cleared(self, kind: str, options: Mapping[str, Any]) -> None:
        if kind == "dead-channel":
            self._dead = np.zeros(self.n_channels, dtype=bool)

    def kill_channels(self, channels: Iterable[int]) -> None:
        """Shorthand for ``inject_fault("dead-channel", channels=channels)``."""
        self.inject_fault("dead-channel", channels=list(channels))

    # -- readings ---------------------------------------------------------------------------

    def readings(self) -> dict[str, Value]:
        """Return the scalar readings (channel powers are :attr:`values`/:attr:`statuses`)."""
        t = self.last_update
        ok = Status.NOMINAL
        level_thr = Thresholds(warn_high=-10.0, error_high=-3.0)
        n_dead = int(self._dead.sum())
        return {
            "adc-level": Value(self.adc_level, level_thr.status(self.adc_level), t),
            "adc-clipping": Value(self.adc_clipping, Status.ERROR if self.adc_clipping else ok, t),
            "update-count": Value(self._count, ok, t),
            "dead-channels": Value(n_dead, Status.ERROR if n_dead else ok, t),
        }
