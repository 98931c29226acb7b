"""Weather station: correlated, mean-reverting random walks.

The quantities are driven by independent standardised Ornstein-Uhlenbeck processes ``u``, one
per quantity with that quantity's correlation time ``tau``, updated exactly over any step:
``u <- phi * u + sqrt(1 - phi**2) * n`` with ``phi = exp(-dt / tau)``. They are mixed by the
Cholesky factor ``L`` of the configured correlation matrix ``C``: the latent state is
``z = L @ u``, so ``corr(z) == L @ L.T == C`` exactly at all times and for any step size, and
quantity ``i`` has autocorrelation ``sum_k L[i, k]**2 * exp(-lag / tau_k)`` (dominated by its
own ``tau``; correlated quantities inherit some of each other's time scales, as wind inherits
slow trends from the pressure systems). A reported value is ``mean + std * z``, then clipped to
its physical range (wind speed >= 0, humidity 0-100 %) or wrapped (wind direction mod 360).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import SensorSpec, SimModel, Status, Thresholds, Value

__all__ = ["DEFAULT_CORRELATION", "DEFAULT_VARIABLES", "WeatherStation", "WeatherVariable"]


@dataclass(frozen=True)
class WeatherVariable:
    """One weather quantity.

    Attributes
    ----------
    name
        Reading name.
    mean, std
        Stationary mean and standard deviation.
    tau
        Correlation time (s) of the walk.
    units
        Units of the reading.
    thresholds
        Warn/error bounds.
    low, high
        Physical range the value is clipped to (``None``: unbounded).
    wrap
        If set, the value is reported modulo ``wrap`` (a direction in degrees).
    """

    name: str
    mean: float
    std: float
    tau: float
    units: str
    thresholds: Thresholds = Thresholds()
    low: float | None = None
    high: float | None = None
    wrap: float | None = None


#: Karoo-like defaults (MeerKAT site, about 1050 m above sea level).
DEFAULT_VARIABLES: tuple[WeatherVariable, ...] = (
    WeatherVariable(
        "temperature", 18.0, 6.0, 3 * 3600.0, "degC",
        Thresholds(warn_low=-5.0, warn_high=35.0, error_low=-10.0, error_high=45.0),
    ),
    WeatherVariable(
        "humidity", 35.0, 15.0, 2 * 3600.0, "%",
        Thresholds(warn_high=80.0, error_high=95.0), low=0.0, high=100.0,
    ),
    WeatherVariable(
        "pressure", 895.0, 3.0, 6 * 3600.0, "hPa",
        Thresholds(warn_low=870.0, warn_high=920.0, error_low=850.0, error_high=940.0),
    ),
    WeatherVariable(
        "wind-speed", 4.0, 3.0, 600.0, "m/s",
        Thresholds(warn_high=15.0, error_high=20.0), low=0.0,
    ),
    WeatherVariable("wind-direction", 315.0, 40.0, 1800.0, "deg", wrap=360.0),
)  # fmt: skip

#: Correlations between the latent walks, in the order of :data:`DEFAULT_VARIABLES`:
#: warm air is dry, low pressure is windy and humid.
DEFAULT_CORRELATION: np.ndarray = np.array(
    [
        [1.0, -0.6, -0.2, 0.2, 0.0],
        [-0.6, 1.0, -0.3, 0.1, 0.0],
        [-0.2, -0.3, 1.0, -0.4, 0.0],
        [0.2, 0.1, -0.4, 1.0, 0.1],
        [0.0, 0.0, 0.0, 0.1, 1.0],
    ]
)


def _specs(variables: Sequence[WeatherVariable]) -> dict[str, SensorSpec]:
    return {
        v.name: SensorSpec("float", v.name.replace("-", " ").capitalize(), v.units)
        for v in variables
    }


class WeatherStation(SimModel):
    """Weather station with correlated temperature, humidity, pressure and wind.

    Parameters
    ----------
    variables
        The quantities, in the order of ``correlation``'s rows.
    correlation
        Stationary correlation matrix of the latent walks (symmetric positive definite, ones
        on the diagonal).
    stale_timeout
        Age (s) beyond which a frozen reading (``stale`` fault) has status UNKNOWN.
    gust_speed
        Default wind speed (m/s) forced by the ``gust`` fault.
    seed, start_time
        See :class:`~katcpx_devices.models.base.SimModel`. The initial state is drawn from the
        stationary distribution.
    """

    FAULTS: ClassVar[Mapping[str, str]] = {
        "gust": (
            "Wind speed reads option speed (m/s; default gust_speed, 25: ERROR) while active; "
            "the walk carries on underneath and is reported again once cleared."
        ),
        "sensor-dead": (
            "The sensor named by option sensor (default 'wind-speed') freezes at its value at "
            "injection, with its timestamp, and has status UNREACHABLE; one sensor at a time."
        ),
        "stale": (
            "The station stops delivering samples: every value and timestamp freezes at "
            "injection, keeping its status until older than stale_timeout, then UNKNOWN."
        ),
    }
    #: Sensors of a station with :data:`DEFAULT_VARIABLES`; see :meth:`sensor_specs`.
    SENSORS: ClassVar[Mapping[str, SensorSpec]] = _specs(DEFAULT_VARIABLES)

    def __init__(
        self,
        variables: Sequence[WeatherVariable] = DEFAULT_VARIABLES,
        correlation: np.ndarray | None = None,
        *,
        stale_timeout: float = 60.0,
        gust_speed: float = 25.0,
        seed: int | None = None,
        start_time: float = 0.0,
    ) -> None:
        super().__init__(seed=seed, start_time=start_time)
        self.variables = tuple(variables)
        n = len(self.variables)
        corr = DEFAULT_CORRELATION if correlation is None else np.asarray(correlation, float)
        if corr.shape != (n, n):
            raise ValueError(f"correlation must be {n}x{n}, got shape {corr.shape}")
        if not (np.allclose(corr, corr.T) and np.allclose(np.diag(corr), 1.0)):
            raise ValueError("correlation must be symmetric with ones on the diagonal")
        try:
            chol = np.linalg.cholesky(corr)
        except np.linalg.LinAlgError:
            raise ValueError("correlation matrix must be positive definite") from None
        self.correlation = corr.copy()
        self.mixing = chol
        self.names = tuple(v.name for v in self.variables)
        if len(set(self.names)) != n:
            raise ValueError("weather variable names must be unique")
        self._index = {name: i for i, name in enumerate(self.names)}
        self._mean = np.array([v.mean for v in self.variables])
        self._std = np.array([v.std for v in self.variables])
        self._tau = np.array([v.tau for v in self.variables])
        if not (np.all(self._std >= 0) and np.all(self._tau > 0)):
            raise ValueError("weather std must be non-negative and tau positive")
        self.stale_timeout = float(stale_timeout)
        self.gust_speed = float(gust_speed)
        self._u = self.rng.standard_normal(n)  # stationary start
        # Frozen readings by name (sensor-dead, stale): value and sample time.
        self._frozen: dict[str, Value] = {}

    # -- physics ----------------------------------------------------------------------------

    def _advance(self, dt: float) -> None:
        phi = np.exp(-dt / self._tau)
        self._u = phi * self._u + np.sqrt(1.0 - phi * phi) * self.rng.standard_normal(len(phi))

    @property
    def latent(self) -> np.ndarray:
        """Standardised latent state ``z`` (zero mean, unit variance, correlation ``C``)."""
        return np.asarray(self.mixing @ self._u)

    def autocorrelation(self, lag: float) -> np.ndarray:
        """Autocorrelation of each latent quantity at ``lag`` seconds."""
        return np.asarray((self.mixing**2) @ np.exp(-abs(lag) / self._tau))

    def true_values(self) -> dict[str, float]:
        """The walk's values now, ignoring faults."""
        raw = self._mean + self._std * self.latent
        out = {}
        for var, x in zip(self.variables, raw, strict=True):
            value = float(x)
            if var.low is not None:
                value = max(value, var.low)
            if var.high is not None:
                value = min(value, var.high)
            if var.wrap is not None:
                value %= var.wrap
            out[var.name] = value
        return out

    # -- faults -----------------------------------------------------------------------------

    def _fault_started(self, kind: str, options: Mapping[str, Any]) -> None:
        allowed = {"gust": {"speed"}, "sensor-dead": {"sensor"}}.get(kind, set())
        unknown = set(options) - allowed
        if unknown:
            raise ValueError(f"fault {kind!r} does not take {sorted(unknown)}")
        if kind == "sensor-dead":
            name = options.get("sensor", "wind-speed")
            if name not in self._index:
                raise ValueError(f"no weather sensor {name!r} (known: {', '.join(self.names)})")
            self.clear_fault("sensor-dead")
            self._frozen[f"dead:{name}"] = self._live_readings()[name]
        elif kind == "stale":
            for name, reading in self._live_readings().items():
                self._frozen[f"stale:{name}"] = reading
        elif kind == "gust" and "wind-speed" not in self._index:
            raise ValueError("this station has no wind-speed sensor")

    def _fault_cleared(self, kind: str, options: Mapping[str, Any]) -> None:
        prefix = {"sensor-dead": "dead:", "stale": "stale:"}.get(kind)
        if prefix is not None:
            for key in [k for k in self._frozen if k.startswith(prefix)]:
                del self._frozen[key]

    # -- readings ---------------------------------------------------------------------------

    def _live_readings(self) -> dict[str, Value]:
        t = self._time
        values = self.true_values()
        if "gust" in self.faults:
            values["wind-speed"] = float(self.fault_options("gust").get("speed", self.gust_speed))
        return {
            var.name: Value(values[var.name], var.thresholds.status(values[var.name]), t)
            for var in self.variables
        }

    def readings(self) -> dict[str, Value]:
        """Return the station's readings: one per variable, name as in :attr:`names`."""
        out = self._live_readings()
        for name in self.names:
            stale = self._frozen.get(f"stale:{name}")
            if stale is not None:
                too_old = self._time - stale.timestamp > self.stale_timeout
                out[name] = stale._replace(status=Status.UNKNOWN) if too_old else stale
            dead = self._frozen.get(f"dead:{name}")
            if dead is not None:
                out[name] = dead._replace(status=Status.UNREACHABLE)
        return out

    def value(self, name: str) -> float:
        """Reported value of ``name`` (faults applied)."""
        return float(self.readings()[name].value)

    def status(self, name: str) -> Status:
        """Status of ``name``'s reading (faults applied)."""
        return self.readings()[name].status

    def sensor_specs(self) -> Mapping[str, SensorSpec]:
        """Sensor descriptions, built from :attr:`variables`."""
        return _specs(self.variables)
