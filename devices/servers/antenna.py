"""Simulated antenna positioner: ``?target``, ``?stop``, ``?stow`` and the operations
``slew`` (a task) and ``track`` (a process).

``?target az el`` and ``?stow`` are slow: their handlers are ``async def`` and
``@concurrent_reply``, so the client may send ``?stop`` (or anything else) while a slew is in
progress, and they carry ``@request_timeout_hint`` so clients wait long enough. While slewing,
``?target`` sends ``#target <az> <el> <remaining-s>`` progress informs and replies once the
antenna is on target. A newer motion command, ``?stop`` or a drive fault ends it with ``fail``.

The same motions are also :mod:`katcpx.ops` operations (``?slew-start``, ``?track-start``...):
``slew`` publishes its progress in its session and brakes when aborted; ``track`` follows a
target drifting at constant rates until it is stopped. Every motion command, request or
operation, supersedes the one in progress, which then ends unsuccessfully.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

from katcpx.errors import FailReply
from katcpx.kattypes import concurrent_reply, request_timeout_hint
from katcpx.ops import OperationsMixin, OpSession, process, task
from katcpx.server import ClientRequestConnection

from ..models import AntennaPositioner, FaultError, TargetOutOfRange
from .base import SimDeviceServer

__all__ = ["AntennaServer"]

#: Real seconds a slew of the full azimuth range takes at speed 1 (460 deg at 2 deg/s), with
#: margin: the timeout hint of the slow requests.
SLEW_TIMEOUT_HINT = 300.0

#: Azimuth drift (deg/s) of the default ``track`` target: the sidereal rate, 15 deg/hour.
SIDEREAL_RATE = 360.0 / 86164.0905

#: ``progress(az, el, remaining)``: current position (deg), simulated seconds to go.
Progress = Callable[[float, float, float], None]


def _num(value: float, digits: int = 4) -> float | None:
    """A float for an operation's JSON data: rounded, and None for inf/nan (not JSON)."""
    return round(value, digits) if math.isfinite(value) else None


class AntennaServer(OperationsMixin, SimDeviceServer):
    """Device server of a simulated az/el antenna positioner.

    Parameters
    ----------
    host, port
        Address to listen on.
    progress_interval
        Real seconds between ``#target`` progress informs, and between the progress updates
        of the ``slew`` and ``track`` operations.
    **kwargs
        ``speed``, ``seed``, ``tick``, ``clock``: see
        :class:`~katcpx_devices.servers.base.SimDeviceServer`.
    """

    DEVICE: ClassVar[str] = "antenna"
    VERSION_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-antenna", 1, 0)
    BUILD_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-antenna", 1, 0, "")

    model: AntennaPositioner

    def __init__(
        self, host: str, port: int, *, progress_interval: float = 0.5, **kwargs: Any
    ) -> None:
        self.progress_interval = float(progress_interval)
        # Set when a newer motion command supersedes the one a handler is waiting on.
        self._superseded: asyncio.Future[str] | None = None
        super().__init__(host, port, **kwargs)

    def make_model(self, *, seed: int | None, start_time: float) -> AntennaPositioner:
        """An antenna parked at zenith, facing north."""
        return AntennaPositioner(az=0.0, el=90.0, seed=seed, start_time=start_time)

    # -- requests -----------------------------------------------------------------------------

    @concurrent_reply
    @request_timeout_hint(SLEW_TIMEOUT_HINT)
    async def request_target(
        self, req: ClientRequestConnection, az: float, el: float
    ) -> tuple[float, float]:
        """Slew to a fixed position and reply once on target.

        Parameters
        ----------
        az : float
            Azimuth (deg) within the soft limits (-185 to 275).
        el : float
            Elevation (deg) within the soft limits (15 to 92).

        Informs
        -------
        az, el, remaining : float
            Progress: current position (deg) and estimated simulated seconds to go.

        Returns
        -------
        az, el : float
            Position reached (deg).
        """
        self.model.advance_to(self.clock.now())
        try:
            self.model.target(az, el)
        except (TargetOutOfRange, FaultError) as exc:
            raise FailReply(str(exc)) from None
        await self._wait_until_there("?target", progress=req.inform)
        return self.model.az, self.model.el

    async def request_stop(self, req: ClientRequestConnection) -> None:
        """Brake both axes to a halt (interrupts a ``?target`` or ``?stow`` in progress)."""
        self.model.advance_to(self.clock.now())
        self.model.stop()
        self._supersede("?stop")
        self.update_sensors()

    @concurrent_reply
    @request_timeout_hint(SLEW_TIMEOUT_HINT)
    async def request_stow(self, req: ClientRequestConnection) -> float:
        """Drive to the stow elevation, holding azimuth, and reply once stowed.

        Returns
        -------
        el : float
            Elevation reached (deg).
        """
        self.model.advance_to(self.clock.now())
        try:
            self.model.stow()
        except FaultError as exc:
            raise FailReply(str(exc)) from None
        await self._wait_until_there("?stow", stow=True)
        return self.model.el

    # -- helpers ------------------------------------------------------------------------------

    def on_server_stop(self) -> None:
        # A slew still waiting when the server stops fails rather than outliving it.
        if self._superseded is not None and not self._superseded.done():
            self._superseded.set_result("server shutdown")
        super().on_server_stop()

    def _supersede(self, by: str) -> asyncio.Future[str]:
        """End the wait of the previous motion command (``by`` says why); return the future
        that ends the wait of the command now starting."""
        if self._superseded is not None and not self._superseded.done():
            self._superseded.set_result(by)
        self._superseded = asyncio.get_running_loop().create_future()
        return self._superseded

    def _brake_if_current(self, superseded: asyncio.Future[str], why: str) -> None:
        """Brake the antenna if the motion that owns ``superseded`` is still the current one
        (an aborted or stopped operation must not stop a newer motion command)."""
        if superseded is self._superseded and not superseded.done():
            superseded.set_result(why)
            self.model.advance_to(self.clock.now())
            self.model.stop()
            self.update_sensors()

    async def _wait_until_there(
        self,
        command: str,
        *,
        progress: Progress | None = None,
        stow: bool = False,
        brake_on_cancel: bool = False,
    ) -> None:
        """Wait for the motion just commanded to end, reporting progress.

        Parameters
        ----------
        command
            Name of the command (``?target``, ``slew``...): what a superseded wait of an
            earlier command reports it was interrupted by.
        progress
            Called every :attr:`progress_interval` with the position and the time to go.
        stow
            Wait for the stow position rather than for the commanded target.
        brake_on_cancel
            Brake the antenna if the wait is cancelled while this motion is still current.

        Raises
        ------
        FailReply
            If another command supersedes this one, or a fault stops the antenna.
        """
        superseded = self._supersede(command)
        self.update_sensors()
        next_inform = 0.0
        try:
            while True:
                model = self.model
                model.advance_to(self.clock.now())
                self.update_sensors()
                if superseded.done():
                    raise FailReply(f"interrupted by {superseded.result()}")
                if model.mode == "error":
                    raise FailReply(f"drive failure ({', '.join(sorted(model.faults))})")
                remaining = model.time_to_target()
                if stow:
                    arrived = model.mode == "stow" and remaining <= 0.0
                else:
                    # The model switches from "slew" to "track" once at rest on the target.
                    arrived = model.mode == "track" and model.on_target
                if arrived:
                    return
                if math.isinf(remaining):
                    raise FailReply(f"cannot reach target: {', '.join(sorted(model.faults))}")
                now = time.monotonic()
                if progress is not None and now >= next_inform:
                    progress(model.az, model.el, remaining)
                    next_inform = now + self.progress_interval
                # Wake when the model says the move ends (the model's time is exact), or for
                # the next progress report, or at once when a newer command supersedes this one.
                delay = min(self.clock.real_delay(remaining), self.progress_interval)
                await asyncio.wait([superseded], timeout=max(delay, 0.001))
        except asyncio.CancelledError:
            if brake_on_cancel:
                self._brake_if_current(superseded, f"cancelled {command}")
            raise

    # -- operations ---------------------------------------------------------------------------

    @task
    async def slew(self, session: OpSession, az: float, el: float) -> tuple[bool, str]:
        """Slew to a fixed position (az, el in deg) and end once on target.

        The session's data shows the position (``az``, ``el``), the target and the simulated
        seconds to go (``remaining``). Aborting brakes the antenna. A later motion command
        (``?target``, ``?stop``, ``?stow``, ``track``) or a drive fault ends the slew failed.
        """
        model = self.model
        model.advance_to(self.clock.now())
        try:
            model.target(az, el)
        except (TargetOutOfRange, FaultError) as exc:
            return False, f"Cannot slew: {exc}."
        session.publish(target_az=az, target_el=el)
        session.add_message(f"Slewing to az={az:.3f} el={el:.3f}: {model.time_to_target():.1f} s.")

        def progress(cur_az: float, cur_el: float, remaining: float) -> None:
            session.publish(az=_num(cur_az), el=_num(cur_el), remaining=_num(remaining, 2))

        try:
            await self._wait_until_there("slew", progress=progress, brake_on_cancel=True)
        except FailReply as exc:
            return False, f"Slew {exc}."
        progress(model.az, model.el, 0.0)
        return True, f"On target at az={model.az:.3f} el={model.el:.3f}."

    @process
    async def track(
        self,
        session: OpSession,
        az: float,
        el: float,
        az_rate: float = SIDEREAL_RATE,
        el_rate: float = 0.0,
    ) -> tuple[bool, str]:
        """Track a target that starts at (az, el) and drifts at az_rate, el_rate (deg/s).

        The default drift is the sidereal rate in azimuth. The antenna acquires the target
        from wherever it is and follows it until the process is stopped, then brakes. The
        session's data shows the position, the target's, the pointing ``error`` (deg) and
        ``on_target``; the session is degraded while it has lost the target after acquiring
        it. A later motion command, a drive fault or the target leaving the soft limits ends
        it failed.
        """
        model = self.model
        model.advance_to(self.clock.now())
        t0 = model.time

        def target_at(t: float) -> tuple[float, float]:
            return az + az_rate * (t - t0), el + el_rate * (t - t0)

        try:
            model.track(target_at)
        except (TargetOutOfRange, FaultError) as exc:
            return False, f"Cannot track: {exc}."
        superseded = self._supersede("track")
        self.update_sensors()
        acquired = False
        on_time = 0.0  # simulated seconds on target since acquisition
        last = t0
        try:
            while True:
                model.advance_to(self.clock.now())
                self.update_sensors()
                if superseded.done():
                    return False, f"Tracking interrupted by {superseded.result()}."
                if model.mode == "error":
                    faults = ", ".join(sorted(model.faults))
                    return False, f"Tracking failed: drive failure ({faults})."
                target_az, target_el = model.requested
                try:
                    model.az_axis.check(target_az)
                    model.el_axis.check(target_el)
                except TargetOutOfRange as exc:
                    self._brake_if_current(superseded, "the end of track")
                    return False, f"Target left the soft limits: {exc}."
                on = model.on_target
                if on and not acquired:
                    acquired = True
                    session.add_message(
                        f"Target acquired after {model.time - t0:.1f} simulated s "
                        f"(az={model.az:.3f} el={model.el:.3f})."
                    )
                elif acquired and on:
                    on_time += model.time - last
                last = model.time
                # Degraded, not failed: a lost target is usually re-acquired (e.g. after noise).
                session.degraded = acquired and not on
                session.publish(
                    az=_num(model.az),
                    el=_num(model.el),
                    target_az=_num(target_az),
                    target_el=_num(target_el),
                    error=_num(model.pointing_error(), 6),
                    on_target=on,
                )
                if await session.sleep(self.progress_interval):
                    break
        except asyncio.CancelledError:
            self._brake_if_current(superseded, "cancelled track")
            raise
        self._brake_if_current(superseded, "the end of track")
        tracked = model.time - t0
        if not acquired:
            return True, f"Tracking stopped after {tracked:.1f} simulated s, before acquisition."
        return True, (
            f"Tracking stopped after {tracked:.1f} simulated s, on target {on_time:.1f} s of them."
        )
