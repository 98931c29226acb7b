"""Simulated receiver cryocooler: staged cool-down and warm-up.

A cool-down takes about 24 simulated minutes (first stage at 70 K, second at 20 K) and a
warm-up about 40, so ``?cooldown`` and ``?warmup`` are async handlers that reply when done,
report progress with informs, and carry a ``@request_timeout_hint``. Run the simulation faster
(``--speed``) to watch them in seconds.

The cool-down is also a :mod:`katcpx.ops` task, ``cooldown`` (``?cooldown-start``,
``?cooldown-wait``, ``?cooldown-abort``...): it publishes the stage and temperature in its
session, adds a message per stage reached, fails with the reason on a fault, and stops the
compressor (the cryocooler then warms up) when aborted.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, ClassVar

from katcpx.errors import FailReply
from katcpx.kattypes import concurrent_reply, request_timeout_hint
from katcpx.ops import OperationsMixin, OpSession, task
from katcpx.server import ClientRequestConnection

from ..models import Cryocooler, FaultError
from .base import SimDeviceServer

__all__ = ["CryoServer"]

#: Real seconds (at speed 1) a cool-down or warm-up may take, with margin.
CRYO_TIMEOUT_HINT = 3600.0


def _num(value: float, digits: int = 3) -> float | None:
    """A float for an operation's JSON data: rounded, and None for inf/nan (not JSON)."""
    return round(value, digits) if math.isfinite(value) else None


class CryoServer(OperationsMixin, SimDeviceServer):
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
        self.model.advance_to(self.clock.now())
        try:
            self.model.start_cooldown()
        except FaultError as exc:
            raise FailReply(str(exc)) from None
        return await self._until_cold(on_stage=req.inform)

    @task
    async def cooldown(self, session: OpSession) -> tuple[bool, str]:
        """Cool the receiver down to its operating temperature (about 24 simulated minutes).

        The session's data shows ``state``, ``stage``, ``temperature`` (K) and ``remaining``
        (simulated s); each stage reached adds a message. A fault fails the cool-down with its
        cause. Aborting stops the compressor: the cryocooler warms up again.
        """
        model = self.model
        model.advance_to(self.clock.now())
        try:
            model.start_cooldown()
        except FaultError as exc:
            return False, f"Cannot cool down: {exc}."
        session.add_message(
            f"Compressor on at {model.temperature_readback:.1f} K: "
            f"about {model.expected_cooldown_time() / 60:.0f} simulated minutes to go."
        )

        def on_stage(stage: str, temperature: float) -> None:
            session.add_message(f"Stage {stage} reached at {temperature:.1f} K.")

        def on_poll() -> None:
            remaining = model.expected_cooldown_time() if model.state == "cooling" else 0.0
            session.publish(
                state=model.state,
                stage=model.stage,
                temperature=_num(model.temperature_readback),
                remaining=_num(remaining, 1),
            )

        try:
            temperature = await self._until_cold(on_stage=on_stage, on_poll=on_poll)
        except FailReply as exc:
            on_poll()
            return False, f"Cool-down failed: {exc}."
        except asyncio.CancelledError:
            # Aborted: leave the hardware in a defined state rather than cooling unattended.
            model.advance_to(self.clock.now())
            if model.state in ("cooling", "cold"):
                model.warmup()
                self.update_sensors()
                session.add_message(
                    f"Compressor off at {model.temperature_readback:.1f} K: warming up."
                )
            on_poll()
            raise
        on_poll()
        return True, f"Cold: {temperature:.1f} K."

    async def _until_cold(
        self,
        on_stage: Callable[[str, float], object],
        on_poll: Callable[[], None] | None = None,
    ) -> float:
        """Wait until a cool-down already started is complete.

        Parameters
        ----------
        on_stage
            Called with ``(stage, temperature)`` as each stage is reached, in order.
        on_poll
            Called after every update of the model while waiting.

        Returns
        -------
        float
            Cold-head temperature (K) once cold.

        Raises
        ------
        FailReply
            If the cool-down is interrupted (state no longer ``cooling``) or a fault makes
            it impossible.
        """
        model = self.model
        self.update_sensors()
        names = [st.name for st in model.stages]
        reached = names.index(model.stage) + 1 if model.stage in names else 0
        while model.state != "cold" or reached < len(names):
            if on_poll is not None:
                on_poll()
            # Report every stage passed since the last check, in order, even if one step
            # crossed several.
            now_reached = names.index(model.stage) + 1 if model.stage in names else 0
            for name in names[reached:now_reached]:
                on_stage(name, model.temperature)
            reached = max(reached, now_reached)
            if model.state == "cold":
                continue
            faults = ", ".join(sorted(model.faults))
            if model.state != "cooling":
                why = f" ({faults})" if faults else ""
                raise FailReply(f"cool-down interrupted: state is {model.state}{why}")
            remaining = model.expected_cooldown_time()
            if math.isinf(remaining):
                raise FailReply(
                    f"cool-down cannot complete ({faults}); the compressor keeps running"
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
