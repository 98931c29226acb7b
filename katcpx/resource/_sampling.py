"""The sampling side of a resource: its strategies and listeners, by sensor identifier.

:class:`SensorSamplingMixin` gives :class:`~katcpx.resource.KATCPClientResource`
katcp-python's strategy and listener methods on top of its :class:`StrategyBook` (what is
memorised and sent) and its :class:`ResourceModel` (the sensor objects).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Sequence
from typing import Any

from .._anyloop import done_future
from ._inspecting import InspectingClient
from ._model import ResourceModel
from ._objects import Listener
from ._strategies import StrategyBook, StrategyRefused
from ._types import StrategyParams, escape_name, normalize_strategy_parameters

__all__ = ["SensorSamplingMixin", "echo_strategy"]


class SensorSamplingMixin:
    """katcp-python's strategy and listener methods of a resource (see the module)."""

    _client: InspectingClient | None
    _model: ResourceModel
    _strategies: StrategyBook

    def get_sampling_strategy(self, sensor_name: str) -> StrategyParams:
        """The memorised strategy of a sensor (``("none",)`` if none)."""
        return self._strategies.get(escape_name(sensor_name))

    def set_sampling_strategy(
        self, sensor_name: str, strategy_and_parms: Any
    ) -> asyncio.Future[dict[str, Any]]:
        """Set a strategy for a sensor even if it is not yet known.

        The strategy is memorised and re-applied after reconnecting, and when the sensor
        appears.

        Parameters
        ----------
        sensor_name
            KATCP name or Python identifier of the sensor.
        strategy_and_parms
            ``"event"``, ``"period 0.5"`` or a sequence such as ``("event-rate", 1, 5)``.

        Returns
        -------
        asyncio.Future
            Resolves with ``{python_identifier: strategy_and_parms}`` (the value as passed,
            as katcp-python 0.9.3 does, whether or not the server accepted it: a refusal is
            logged as an error), or ``{}`` when the sensor is not known yet.
        """
        ident = escape_name(sensor_name)
        strategy = normalize_strategy_parameters(strategy_and_parms)
        self._strategies.memorise(ident, strategy)
        if (
            ident not in self._model.sensor
            or self._client is None
            or not self._client.is_connected()
        ):
            return done_future({})
        return asyncio.ensure_future(
            echo_strategy(self._apply_strategies([ident]), strategy_and_parms)
        )

    def set_sensor_sampling_strategy(
        self, sensor_name: str, strategy_and_parms: Any
    ) -> asyncio.Future[tuple[bool, Any]]:
        """Set a sensor's strategy; what :class:`~katcpx.resource.KATCPSensor` calls.

        Returns
        -------
        asyncio.Future
            Resolves with ``(True, normalised strategy)`` or ``(False, error text)``, the
            result of katcp-python 0.9.3's sensor manager.
        """
        ident = escape_name(sensor_name)
        try:
            strategy = normalize_strategy_parameters(strategy_and_parms)
        except ValueError as exc:
            return done_future((False, str(exc)))
        self._strategies.memorise(ident, strategy)

        async def setting() -> tuple[bool, Any]:
            results = await self._apply_strategies([ident])
            outcome = results.get(ident, strategy)
            if isinstance(outcome, str):
                # katcp-python's text shows the server's reply message when one came.
                reply = outcome.reply if isinstance(outcome, StrategyRefused) else None
                shown = outcome if reply is None else str(reply)
                return False, f"Error setting strategy for sensor {sensor_name}: \n{shown}"
            return True, outcome

        return asyncio.ensure_future(setting())

    def set_sampling_strategies(
        self, filter: str, strategy_and_parms: Any
    ) -> asyncio.Future[dict[str, Any]]:
        """Set a strategy for all sensors matching `filter`, including unseen ones.

        Parameters
        ----------
        filter
            Regular expression searched in the sensors' Python identifiers.
        strategy_and_parms
            As for :meth:`set_sampling_strategy`.

        Returns
        -------
        asyncio.Future
            Resolves with ``{python_identifier: strategy_and_parms}`` (as passed, as in
            katcp-python 0.9.3; refusals are logged) for the current sensors.
        """
        pattern = re.compile(filter)
        strategy = normalize_strategy_parameters(strategy_and_parms)
        self._strategies.add_filter(pattern, strategy)
        idents = [i for i in self._model.sensor if pattern.search(i)]
        for ident in idents:
            self._strategies.memorise(ident, strategy)
        if self._client is None or not self._client.is_connected():
            return done_future({})
        return asyncio.ensure_future(
            echo_strategy(self._apply_strategies(idents), strategy_and_parms)
        )

    def drop_sampling_strategy(self, sensor_name: str) -> None:
        """Forget the memorised strategy of a sensor; its current strategy is unchanged."""
        self._strategies.forget(escape_name(sensor_name))

    def set_sensor_listener(
        self, sensor_name: str, listener: Listener
    ) -> asyncio.Future[dict[str, Any]]:
        """Register ``listener(sensor, reading)`` on a sensor, even if it is not yet known.

        The registration persists across disconnect/reconnect and sensor re-creation.

        Returns
        -------
        asyncio.Future
            Resolves with ``{python_identifier: listener}`` if the sensor exists, else ``{}``.
        """
        ident = escape_name(sensor_name)
        if self._model.add_listener(ident, listener) is None:
            return done_future({})
        return done_future({ident: listener})

    def _apply_strategies(self, idents: list[str]) -> Awaitable[dict[str, Any]]:
        return self._strategies.apply(self._client, self._model.sensor, idents)

    def apply_sampling_strategy(
        self, sensor_names: Sequence[str], strategy_and_parms: Any
    ) -> asyncio.Future[dict[str, Any]]:
        """Memorise one strategy for several sensors and send it, in bulk when the server
        announces the ``B`` flag (a katcpx extension; containers use it for their children).

        Parameters
        ----------
        sensor_names
            KATCP names or Python identifiers of the sensors.
        strategy_and_parms
            As for :meth:`set_sampling_strategy`.

        Returns
        -------
        asyncio.Future
            Resolves with ``{python_identifier: strategy as set, or the error text}`` for
            the known sensors; ``{}`` when not connected (the strategies are sent on
            connection).
        """
        strategy = normalize_strategy_parameters(strategy_and_parms)
        idents = [escape_name(n) for n in sensor_names]
        for ident in idents:
            self._strategies.memorise(ident, strategy)
        return asyncio.ensure_future(self._apply_strategies(idents))


async def echo_strategy(applying: Awaitable[dict[str, Any]], passed: Any) -> dict[str, Any]:
    """The results of `applying`, each replaced by the strategy `passed` (katcp-python's)."""
    return {ident: passed for ident in await applying}
