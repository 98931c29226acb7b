"""Simulated receiver cryocooler: staged cool-down and warm-up.

A cool-down takes about 24 simulated minutes (first stage at 70 K, second at 20 K) and a
warm-up about 40, so ``?cooldown`` and ``?warmup`` are async handlers that reply when done,
report progress with informs, and carry a ``@request_timeout_hint``. Run the simulation faster
(``--speed``) to watch them in seconds.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, ClassVar

from katcpx.errors import FailReply
from katcpx.kattypes import concurrent_reply, request_timeout_hint
from katcpx.server import ClientRequestConnection

from ..models import Cryocooler, FaultError
from .base import SimDeviceServer

__all__ = ["CryoServer"]

#: Real seconds (at speed 1) a cool-down or warm-up may take, with margin.
CRYO_TIMEOUT_HINT = 3600.0


class CryoServer(SimDeviceServer):
    """Device server of a simulated two-stage cryocooler.

    Parameters
    ----------
    host, port
        Address to listen on.
    poll_interval
        Longest real time (s) between checks of a cool-down or warm-up in progress.
    **kwargs
        ``speed``, ``seed``, ``tick``, ``clock``: see
        :class:`~katcpx_devices.servers.base.SimDeviceServer`.
    """

    DEVICE: ClassVar[str] = "cryo"
    VERSION_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-cryo", 1, 0)
    BUILD_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-cryo", 1, 0, "")

    model: Cryocooler

    def __init__(self, host: str, port: int, *, poll_interval: float = 0.1, **kwargs: Any) -> None:
        self.poll_interval = float(poll_interval)
        super().__init__(host, port, **kwargs)

    def make_model(self, *, seed: int | None, start_time: float) -> Cryocooler:
        """A warm two-stage cryocooler (the model's defaults)."""
        return Cryocooler(seed=seed, start_time=start_time)

    @concurrent_reply
    @request_timeout_hint(CRYO_TIMEOUT_HINT)
    async def request_cooldown(self, req: ClientRequestConnection) -> float:
        """Start the compressor and reply once cold, informing as each stage is reached.

        Informs
        -------
        stage : str
            Name of the stage just reached (``first-stage``, ``second-stage``).
        temperature : float
            Cold-head temperature (K) then.

        Returns
        -------
        temperature : float
            Cold-head temperature (K) once cold.
        """
        model = self.model
        model.advance_to(self.clock.now())
        try:
            model.start_cooldown()
        except FaultError as exc:
            raise FailReply(str(exc)) from None
        self.update_sensors()
        names = [st.name for st in model.stages]
        reached = names.index(model.stage) + 1 if model.stage in names else 0
        while model.state != "cold" or reached < len(names):
            # Inform every stage passed since the last check, in order, even if one step
            # crossed several.
            now_reached = names.index(model.stage) + 1 if model.stage in names else 0
            for name in names[reached:now_reached]:
                req.inform(name, model.temperature)
            reached = max(reached, now_reached)
            if model.state == "cold":
                continue
            if model.state != "cooling":
                raise FailReply(f"cool-down interrupted: state is {model.state}")
            remaining = model.expected_cooldown_time()
            if math.isinf(remaining):
                raise FailReply(
                    f"cool-down cannot complete ({', '.join(sorted(model.faults))}); "
                    "the compressor keeps running"
                )
            await asyncio.sleep(min(self.clock.real_delay(remaining), self.poll_interval))
            self.advance()
        return model.temperature_readback

    @concurrent_reply
    @request_timeout_hint(CRYO_TIMEOUT_HINT)
    async def request_warmup(self, req: ClientRequestConnection) -> float:
        """Stop the compressor, heat to ambient and reply once warm.

        Returns
        -------
        temperature : float
            Cold-head temperature (K) once warm.
        """
        model = self.model
        model.advance_to(self.clock.now())
        if model.state == "fault":
            raise FailReply(f"cryocooler fault ({', '.join(sorted(model.faults))}); clear it first")
        model.warmup()
        self.update_sensors()
        while model.state != "warm":
            if model.state != "warming":
                raise FailReply(f"warm-up interrupted: state is {model.state}")
            await asyncio.sleep(self.poll_interval)
            self.advance()
        return model.temperature_readback
