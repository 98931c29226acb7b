"""Antenna positioner: two axes with rate and acceleration limits.

Each axis follows a time-optimal trapezoidal (or triangular, for short moves) velocity profile
under its maximum rate and acceleration, integrated exactly phase by phase, so the position
reached after ``step(dt)`` does not depend on how the interval is divided and
:meth:`AntennaPositioner.time_to_target` agrees with the motion to rounding error.

Tracking a moving target is a servo (feed-forward of the target's rate plus a
braking-limited position correction) integrated in small fixed sub-steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from .base import FaultError, SensorSpec, SimModel, Status, Thresholds, Value

__all__ = ["AntennaPositioner", "Axis", "AxisLimits", "TargetOutOfRange"]

#: Modes, in the order of the ``mode`` discrete sensor.
MODES = ("stop", "slew", "track", "stow", "error")

# Positions (deg) and rates (deg/s) closer than this are equal: far below any encoder's
# resolution, far above float rounding for angles of a few hundred degrees.
_EPS_POS = 1e-9
_EPS_VEL = 1e-9


class TargetOutOfRange(ValueError):
    """A commanded position lies outside an axis's soft limits."""


@dataclass(frozen=True)
class AxisLimits:
    """Soft limits and drive capability of one axis.

    Attributes
    ----------
    minimum, maximum
        Soft limits (deg).
    max_rate
        Maximum slew rate (deg/s).
    max_accel
        Maximum acceleration (deg/s^2).
    """

    minimum: float
    maximum: float
    max_rate: float
    max_accel: float

    def __post_init__(self) -> None:
        if not self.minimum < self.maximum:
            raise ValueError(f"axis minimum {self.minimum} must be below maximum {self.maximum}")
        if not (self.max_rate > 0 and self.max_accel > 0):
            raise ValueError("axis max_rate and max_accel must be positive")


def _phase(p: float, v: float, x: float, vmax: float, a: float) -> tuple[float, float]:
    """Return ``(acceleration, duration)`` of the current phase of a move from ``(p, v)`` to
    rest at ``x``; duration is ``inf`` when the axis is at rest on ``x``."""
    err = x - p
    if abs(err) <= _EPS_POS and abs(v) <= _EPS_VEL:
        return 0.0, math.inf
    # s: direction towards the target (or against the motion if already there).
    s = math.copysign(1.0, err) if abs(err) > _EPS_POS else -math.copysign(1.0, v)
    toward = v * s
    if toward < 0:
        # Moving away: brake (then the next phase accelerates back).
        return s * a, -toward / a
    d = abs(err)
    stop_dist = toward * toward / (2 * a)
    if stop_dist >= d - _EPS_POS:
        # Braking now lands on the target (or, after a target change, overshoots it and the
        # axis comes back).
        return -s * a, toward / a
    if toward >= vmax - _EPS_VEL:
        return 0.0, (d - stop_dist) / vmax
    to_vmax = (vmax - toward) / a
    # Time until the remaining distance equals the stopping distance while accelerating.
    to_brake = (-toward + math.sqrt(toward * toward / 2 + a * d)) / a
    return s * a, min(to_vmax, to_brake)


def _profile(
    p: float, v: float, x: float, vmax: float, a: float, dt: float
) -> tuple[float, float, float]:
    """Integrate the move of one axis for ``dt`` seconds.

    Returns
    -------
    p, v
        Position and velocity after ``dt``.
    used
        Time spent moving (``< dt`` when the axis came to rest on the target early; equals the
        total move time when ``dt`` is ``inf``).
    """
    used = 0.0
    for _ in range(64):  # a move has at most ~5 phases; this only guards against a float trap
        if used >= dt:
            break
        acc, dur = _phase(p, v, x, vmax, a)
        if dur == math.inf:
            return x, 0.0, used
        t = min(dur, dt - used)
        p += v * t + 0.5 * acc * t * t
        v += acc * t
        used += t
        if t == dur:
            # Remove the rounding the phase end would otherwise carry into the next phase.
            if acc != 0 and abs(abs(v) - vmax) <= 1e-6 * vmax:
                v = math.copysign(vmax, v)
            elif abs(v) <= 1e-6 * vmax:
                v = 0.0
                if abs(x - p) <= 1e-6:
                    p = x
    return p, v, used


class Axis:
    """State of one axis: position, velocity and commanded position.

    Parameters
    ----------
    limits
        Soft limits and drive capability.
    position
        Initial position (deg); must be within the soft limits.
    name
        Axis name used in error messages.
    """

    def __init__(self, limits: AxisLimits, position: float, name: str) -> None:
        self.limits = limits
        self.name = name
        self.check(position)
        self.position = float(position)
        self.velocity = 0.0
        self.target = float(position)
        self.stalled = False

    def check(self, position: float) -> None:
        """Raise :class:`TargetOutOfRange` if ``position`` is outside the soft limits."""
        lim = self.limits
        if not (lim.minimum <= position <= lim.maximum) or math.isnan(position):
            raise TargetOutOfRange(
                f"{self.name} {position!r} deg is outside the soft limits "
                f"[{lim.minimum}, {lim.maximum}] deg"
            )

    def clamp(self, position: float) -> float:
        """Return ``position`` limited to the soft limits."""
        return min(max(position, self.limits.minimum), self.limits.maximum)

    def move(self, dt: float) -> None:
        """Follow the trapezoidal profile towards :attr:`target` for ``dt`` seconds."""
        if self.stalled:
            self.velocity = 0.0
            return
        lim = self.limits
        self.position, self.velocity, _ = _profile(
            self.position, self.velocity, self.target, lim.max_rate, lim.max_accel, dt
        )

    def servo(self, now: float, target: float, target_rate: float, h: float) -> None:
        """One tracking sub-step of ``h`` seconds.

        ``now`` is where the target is at the start of the sub-step and ``target`` where it is
        at the end, moving at ``target_rate``.
        """
        self.target = target
        if self.stalled:
            self.velocity = 0.0
            return
        lim = self.limits
        err = now - self.position
        # Close the gap at the braking-limited speed (slightly under the limit, since the
        # velocity lags the demand by up to one sub-step of acceleration), and at most err/h
        # so the last sub-step lands on the target instead of overshooting it.
        corr = min(lim.max_rate, math.sqrt(1.6 * lim.max_accel * abs(err)), abs(err) / h)
        want = max(-lim.max_rate, min(lim.max_rate, target_rate + math.copysign(corr, err)))
        dv = max(-lim.max_accel * h, min(lim.max_accel * h, want - self.velocity))
        v_new = self.velocity + dv
        self.position += 0.5 * (self.velocity + v_new) * h
        self.velocity = v_new

    def time_to_target(self) -> float:
        """Time (s) until the axis comes to rest on :attr:`target` (``inf`` if stalled)."""
        if self.stalled:
            on = abs(self.target - self.position) <= _EPS_POS
            return 0.0 if on else math.inf
        lim = self.limits
        _, _, used = _profile(
            self.position, self.velocity, self.target, lim.max_rate, lim.max_accel, math.inf
        )
        return used

    def stopping_point(self) -> float:
        """Where the axis comes to rest if it brakes now at full deceleration."""
        v = self.velocity
        return self.position + math.copysign(v * v / (2 * self.limits.max_accel), v)


#: MeerKAT-like defaults: az 2 deg/s, el 1 deg/s, 0.5-1 deg/s^2, wrap of 460 deg in azimuth.
DEFAULT_AZ = AxisLimits(minimum=-185.0, maximum=275.0, max_rate=2.0, max_accel=1.0)
DEFAULT_EL = AxisLimits(minimum=15.0, maximum=92.0, max_rate=1.0, max_accel=0.5)


class AntennaPositioner(SimModel):
    """Azimuth/elevation antenna positioner.

    Modes: ``stop`` (axes braking or at rest), ``slew`` (moving to a fixed target),
    ``track`` (on a fixed target after a slew, or following a moving target), ``stow``
    (elevation to :attr:`stow_el`, azimuth held) and ``error`` (drive failure).

    Parameters
    ----------
    az, el
        Initial position (deg).
    az_limits, el_limits
        Soft limits and drive capability of each axis.
    tolerance
        On-target tolerance (deg), an angular distance on the sky.
    track_step
        Sub-step (s) of the tracking servo.
    stow_el
        Stow elevation (deg).
    encoder_noise
        Default standard deviation (deg) of the ``encoder-noise`` fault.
    seed, start_time
        See :class:`~katcpx_devices.models.base.SimModel`.
    """

    FAULTS: ClassVar[Mapping[str, str]] = {
        "drive-fail": (
            "Both drives fail: brakes hold the axes where they are (velocity 0 at once), mode "
            "becomes 'error', and target/track/stow raise FaultError until the fault is "
            "cleared, which leaves the antenna in mode 'stop'."
        ),
        "encoder-noise": (
            "Reported az/el get Gaussian noise (option sigma, deg; default encoder_noise) "
            "drawn once per step, and their status is WARN; the true position is unaffected."
        ),
        "stuck-el": (
            "The elevation drive stalls: el stops at once and does not move, az carries on; "
            "on-target is then False unless el already is on target, time_to_target() is inf "
            "and el-drive-ok is False (ERROR). Clearing lets el resume towards its target."
        ),
    }
    SENSORS: ClassVar[Mapping[str, SensorSpec]] = {
        "mode": SensorSpec("discrete", "Positioner mode", "", MODES),
        "az": SensorSpec("float", "Reported azimuth", "deg", (-185.0, 275.0)),
        "el": SensorSpec("float", "Reported elevation", "deg", (15.0, 92.0)),
        "az-rate": SensorSpec("float", "Azimuth rate", "deg/s", (-2.0, 2.0)),
        "el-rate": SensorSpec("float", "Elevation rate", "deg/s", (-1.0, 1.0)),
        "requested-az": SensorSpec("float", "Commanded azimuth", "deg", (-185.0, 275.0)),
        "requested-el": SensorSpec("float", "Commanded elevation", "deg", (15.0, 92.0)),
        "on-target": SensorSpec("boolean", "Within tolerance of the commanded position"),
        "time-to-target": SensorSpec("float", "Estimated time to reach the target", "s"),
        "az-drive-ok": SensorSpec("boolean", "Azimuth drive healthy"),
        "el-drive-ok": SensorSpec("boolean", "Elevation drive healthy"),
    }

    def __init__(
        self,
        az: float = 0.0,
        el: float = 90.0,
        *,
        az_limits: AxisLimits = DEFAULT_AZ,
        el_limits: AxisLimits = DEFAULT_EL,
        tolerance: float = 0.01,
        track_step: float = 0.05,
        stow_el: float = 90.0,
        encoder_noise: float = 0.05,
        seed: int | None = None,
        start_time: float = 0.0,
    ) -> None:
        super().__init__(seed=seed, start_time=start_time)
        self.az_axis = Axis(az_limits, az, "azimuth")
        self.el_axis = Axis(el_limits, el, "elevation")
        self.el_axis.check(stow_el)
        self.tolerance = float(tolerance)
        self.track_step = float(track_step)
        self.stow_el = float(stow_el)
        self.encoder_noise = float(encoder_noise)
        self._mode = "stop"
        self._track_func: Callable[[float], tuple[float, float]] | None = None
        self._noise = (0.0, 0.0)

    # -- state ------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """One of ``stop``, ``slew``, ``track``, ``stow``, ``error``."""
        return self._mode

    @property
    def actual_az(self) -> float:
        """True azimuth (deg), free of encoder noise."""
        return self.az_axis.position

    @property
    def actual_el(self) -> float:
        """True elevation (deg), free of encoder noise."""
        return self.el_axis.position

    @property
    def az(self) -> float:
        """Reported (encoder) azimuth (deg)."""
        return self.az_axis.position + self._noise[0]

    @property
    def el(self) -> float:
        """Reported (encoder) elevation (deg)."""
        return self.el_axis.position + self._noise[1]

    @property
    def requested(self) -> tuple[float, float]:
        """Commanded ``(az, el)`` (deg); for a moving target, its position now."""
        if self._track_func is not None:
            return self._track_target(self._time)
        return self.az_axis.target, self.el_axis.target

    def pointing_error(self) -> float:
        """Angular distance (deg) between the true and the commanded position."""
        req_az, req_el = self.requested
        d_az = (self.actual_az - req_az) * math.cos(math.radians(self.actual_el))
        return math.hypot(d_az, self.actual_el - req_el)

    @property
    def on_target(self) -> bool:
        """Whether the antenna is within :attr:`tolerance` of the commanded position."""
        if self._mode in ("error", "stop"):
            return False
        return self.pointing_error() <= self.tolerance

    @property
    def stowed(self) -> bool:
        """Whether the antenna is in stow mode and at the stow elevation."""
        return self._mode == "stow" and abs(self.actual_el - self.stow_el) <= self.tolerance

    def time_to_target(self) -> float:
        """Estimated time (s) to come to rest on the commanded position.

        Exact for fixed targets (the same profile :meth:`step` follows); for a moving target,
        the time to reach where it is now. ``0`` when stopped and at rest, ``inf`` when a fault
        prevents the axes from getting there.
        """
        if self._mode == "error":
            return math.inf
        if self._track_func is not None:
            if self.on_target:
                return 0.0
            az, el = self._track_target(self._time)
            return max(_time_to(self.az_axis, az), _time_to(self.el_axis, el))
        return max(self.az_axis.time_to_target(), self.el_axis.time_to_target())

    def choose_wrap(self, az: float) -> float:
        """Return the equivalent of ``az`` (mod 360) within the soft limits nearest the
        current azimuth, for callers that think in 0..360 degrees."""
        lim = self.az_axis.limits
        candidates = [
            az % 360.0 + 360.0 * k
            for k in range(-2, 3)
            if lim.minimum <= az % 360.0 + 360.0 * k <= lim.maximum
        ]
        if not candidates:
            raise TargetOutOfRange(f"no wrap of azimuth {az!r} deg is within the soft limits")
        return min(candidates, key=lambda c: abs(c - self.actual_az))

    # -- commands ---------------------------------------------------------------------------

    def target(self, az: float, el: float) -> float:
        """Slew to a fixed ``(az, el)`` (deg); returns :meth:`time_to_target`.

        The mode is ``slew`` until the antenna is on target, then ``track``.

        Raises
        ------
        TargetOutOfRange
            If either coordinate is outside its axis's soft limits.
        FaultError
            During a ``drive-fail`` fault.
        """
        self._check_drive()
        self.az_axis.check(az)
        self.el_axis.check(el)
        self._track_func = None
        self.az_axis.target = float(az)
        self.el_axis.target = float(el)
        self._mode = "slew"
        self._update_mode()
        return self.time_to_target()

    def track(self, func: Callable[[float], tuple[float, float]]) -> None:
        """Follow a moving target; ``func(t)`` gives its ``(az, el)`` (deg) at sim time ``t``.

        Where the target leaves the soft limits the axes wait at the limit (and the antenna
        is not on target).

        Raises
        ------
        TargetOutOfRange
            If the target is outside the soft limits now.
        FaultError
            During a ``drive-fail`` fault.
        """
        self._check_drive()
        az, el = func(self._time)
        self.az_axis.check(az)
        self.el_axis.check(el)
        self._track_func = func
        self._mode = "track"

    def stop(self) -> None:
        """Brake both axes at full deceleration; mode ``stop`` (unless in ``error``)."""
        self._track_func = None
        for axis in (self.az_axis, self.el_axis):
            axis.target = axis.clamp(axis.stopping_point())
        if self._mode != "error":
            self._mode = "stop"

    def stow(self) -> float:
        """Drive the elevation to :attr:`stow_el`, holding azimuth (braking it to rest).

        Returns :meth:`time_to_target`.

        Raises
        ------
        FaultError
            During a ``drive-fail`` fault.
        """
        self._check_drive()
        self._track_func = None
        self.az_axis.target = self.az_axis.clamp(self.az_axis.stopping_point())
        self.el_axis.target = self.stow_el
        self._mode = "stow"
        return self.time_to_target()

    def _check_drive(self) -> None:
        if "drive-fail" in self.faults:
            raise FaultError("antenna drives have failed; clear the fault first")

    # -- physics ----------------------------------------------------------------------------

    def _track_target(self, t: float) -> tuple[float, float]:
        assert self._track_func is not None
        az, el = self._track_func(t)
        return float(az), float(el)

    def _advance(self, dt: float) -> None:
        if self._mode == "error":
            pass
        elif self._track_func is not None:
            n = max(1, math.ceil(dt / self.track_step - 1e-9))
            h = dt / n
            t = self._time
            for i in range(n):
                az0, el0 = self._track_target(t + i * h)
                az1, el1 = self._track_target(t + (i + 1) * h)
                az_rate, el_rate = (az1 - az0) / h, (el1 - el0) / h
                self.az_axis.servo(self.az_axis.clamp(az0), self.az_axis.clamp(az1), az_rate, h)
                self.el_axis.servo(self.el_axis.clamp(el0), self.el_axis.clamp(el1), el_rate, h)
        else:
            self.az_axis.move(dt)
            self.el_axis.move(dt)
        if "encoder-noise" in self.faults:
            sigma = float(self.fault_options("encoder-noise").get("sigma", self.encoder_noise))
            self._noise = (float(self.rng.normal(0, sigma)), float(self.rng.normal(0, sigma)))
        self._update_mode()

    def _update_mode(self) -> None:
        if self._mode == "slew" and self._track_func is None:
            # Arrived at a fixed target: hold it, i.e. "track" a fixed position.
            at_rest = (
                abs(self.az_axis.velocity) <= _EPS_VEL and abs(self.el_axis.velocity) <= _EPS_VEL
            )
            if at_rest and self.pointing_error() <= self.tolerance:
                self._mode = "track"

    # -- faults -----------------------------------------------------------------------------

    def _fault_started(self, kind: str, options: Mapping[str, Any]) -> None:
        if kind == "encoder-noise":
            unknown = set(options) - {"sigma"}
            if unknown:
                raise ValueError(f"fault 'encoder-noise' takes only 'sigma', got {sorted(unknown)}")
            if float(options.get("sigma", self.encoder_noise)) < 0:
                raise ValueError("encoder-noise sigma must be non-negative")
            return
        super()._fault_started(kind, options)
        if kind == "drive-fail":
            self._track_func = None
            for axis in (self.az_axis, self.el_axis):
                axis.velocity = 0.0
                axis.target = axis.position
            self._mode = "error"
        elif kind == "stuck-el":
            self.el_axis.stalled = True
            self.el_axis.velocity = 0.0

    def _fault_cleared(self, kind: str, options: Mapping[str, Any]) -> None:
        if kind == "drive-fail":
            self._mode = "stop"
        elif kind == "stuck-el":
            self.el_axis.stalled = False
        elif kind == "encoder-noise":
            self._noise = (0.0, 0.0)

    # -- readings ---------------------------------------------------------------------------

    def sensor_specs(self) -> Mapping[str, SensorSpec]:
        """:attr:`SENSORS` with ranges from this positioner's axis limits."""
        az, el = self.az_axis.limits, self.el_axis.limits
        specs = dict(self.SENSORS)
        for name, lim in (("az", az), ("el", el), ("requested-az", az), ("requested-el", el)):
            specs[name] = replace(specs[name], params=(lim.minimum, lim.maximum))
        specs["az-rate"] = replace(specs["az-rate"], params=(-az.max_rate, az.max_rate))
        specs["el-rate"] = replace(specs["el-rate"], params=(-el.max_rate, el.max_rate))
        return specs

    def readings(self) -> dict[str, Value]:
        """Return the positioner's readings (see :attr:`SENSORS`)."""
        t = self._time
        noisy = "encoder-noise" in self.faults
        az_lim, el_lim = self.az_axis.limits, self.el_axis.limits
        az_thr = Thresholds(error_low=az_lim.minimum, error_high=az_lim.maximum)
        el_thr = Thresholds(error_low=el_lim.minimum, error_high=el_lim.maximum)

        def pos_status(thr: Thresholds, value: float) -> Status:
            status = thr.status(value)
            return max(status, Status.WARN) if noisy else status

        drive_failed = "drive-fail" in self.faults
        req_az, req_el = self.requested
        ok = Status.NOMINAL
        return {
            "mode": Value(self._mode, Status.ERROR if self._mode == "error" else ok, t),
            "az": Value(self.az, pos_status(az_thr, self.az), t),
            "el": Value(self.el, pos_status(el_thr, self.el), t),
            "az-rate": Value(self.az_axis.velocity, ok, t),
            "el-rate": Value(self.el_axis.velocity, ok, t),
            "requested-az": Value(req_az, ok, t),
            "requested-el": Value(req_el, ok, t),
            "on-target": Value(self.on_target, ok, t),
            "time-to-target": Value(self.time_to_target(), ok, t),
            "az-drive-ok": Value(not drive_failed, Status.ERROR if drive_failed else ok, t),
            "el-drive-ok": Value(
                not (drive_failed or self.el_axis.stalled),
                Status.ERROR if drive_failed or self.el_axis.stalled else ok,
                t,
            ),
        }


def _time_to(axis: Axis, position: float) -> float:
    """Profile time for ``axis`` to come to rest at ``position`` (clamped to its limits)."""
    if axis.stalled:
        return 0.0 if abs(position - axis.position) <= _EPS_POS else math.inf
    lim = axis.limits
    _, _, used = _profile(
        axis.position, axis.velocity, axis.clamp(position), lim.max_rate, lim.max_accel, math.inf
    )
    return used
