"""Simulated antenna positioner: ``?target``, ``?stop``, ``?stow``.

``?target az el`` and ``?stow`` are slow: their handlers are ``async def`` and
``@concurrent_reply``, so the client may send ``?stop`` (or anything else) while a slew is in
progress, and they carry ``@request_timeout_hint`` so clients wait long enough. While slewing,
``?target`` sends ``#target <az> <el> <remaining-s>`` progress informs and replies once the
antenna is on target. A newer motion command, ``?stop`` or a drive fault ends it with ``fail``.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, ClassVar

from katcpx.errors import FailReply
from katcpx.kattypes import concurrent_reply, request_timeout_hint
from katcpx.server import ClientRequestConnection

from ..models import AntennaPositioner, FaultError, TargetOutOfRange
from .base import SimDeviceServer

__all__ = ["AntennaServer"]

#: Real seconds a slew of the full azimuth range takes at speed 1 (460 deg at 2 deg/s), with
#: margin: the timeout hint of the slow requests.
SLEW_TIMEOUT_HINT = 300.0


class AntennaServer(SimDeviceServer):
    """Device server of a simulated az/el antenna positioner.

    Parameters
    ----------
    host, port
        Address to listen on.
    progress_interval
        Real seconds between ``#target`` progress informs.
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
        await self._wait_until_there(req, "target")
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
        await self._wait_until_there(req, "stow")
        return self.model.el

    # -- helpers ------------------------------------------------------------------------------

    def _on_uninstall(self) -> None:
        # A slew still waiting when the server stops fails rather than outliving it.
        if self._superseded is not None and not self._superseded.done():
            self._superseded.set_result("server shutdown")
        super()._on_uninstall()

    def _supersede(self, by: str) -> asyncio.Future[str]:
        """End the wait of the previous motion command (``by`` says why); return the future
        that ends the wait of the command now starting."""
        if self._superseded is not None and not self._superseded.done():
            self._superseded.set_result(by)
        self._superseded = asyncio.get_running_loop().create_future()
        return self._superseded

    async def _wait_until_there(self, req: ClientRequestConnection, command: str) -> None:
        """Wait for the motion just commanded to end, sending progress informs on ``?target``.

        Raises
        ------
        FailReply
            If another command supersedes this one, or a fault stops the antenna.
        """
        superseded = self._supersede(f"?{command}")
        self.update_sensors()
        next_inform = 0.0
        while True:
            model = self.model
            model.advance_to(self.clock.now())
            self.update_sensors()
            if superseded.done():
                raise FailReply(f"interrupted by {superseded.result()}")
            if model.mode == "error":
                raise FailReply(f"drive failure ({', '.join(sorted(model.faults))})")
            remaining = model.time_to_target()
            if command == "stow":
                arrived = model.mode == "stow" and remaining <= 0.0
            else:
                # The model switches from "slew" to "track" once at rest on the target.
                arrived = model.mode == "track" and model.on_target
            if arrived:
                return
            if math.isinf(remaining):
                raise FailReply(f"cannot reach target: {', '.join(sorted(model.faults))}")
            now = time.monotonic()
            if command == "target" and now >= next_inform:
                req.inform(model.az, model.el, remaining)
                next_inform = now + self.progress_interval
            # Wake when the model says the move ends (the model's time is exact), or for the
            # next progress inform, or at once when a newer command supersedes this one.
            delay = min(self.clock.real_delay(remaining), self.progress_interval)
            await asyncio.wait([superseded], timeout=max(delay, 0.001))
