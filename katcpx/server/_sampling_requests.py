"""The sampling requests (``?sensor-sampling``, ``?sensor-sampling-clear``) of DeviceServer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from .._shown import show_names
from ..errors import FailReply
from ..message import Message
from ..sampling import SamplingError
from ._connection import ClientRequestConnection
from ._sensors import SensorDeviceServer

__all__ = ["SamplingRequests", "returns_future_on_loop"]


def returns_future_on_loop(
    coro_fn: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., asyncio.Future[Any] | concurrent.futures.Future[Any]]:
    """Make an ``async def`` standard handler return a future when called, not a coroutine.

    katcp-python's built-in handlers that finish later return a (tornado) Future, and code
    calling them directly (tests, subclasses chaining to them) relies on that. The work runs
    on the server's loop, where the sampling and connection state lives.
    """

    @functools.wraps(coro_fn)
    def method(
        self: SensorDeviceServer, req: ClientRequestConnection, msg: Message
    ) -> asyncio.Future[Any] | concurrent.futures.Future[Any]:
        return self.run_on_loop(coro_fn(self, req, msg))

    return method


class SamplingRequests(SensorDeviceServer):
    """:class:`SensorDeviceServer` with the sampling requests; :class:`DeviceServer` adds
    the other standard requests."""

    @returns_future_on_loop
    async def request_sensor_sampling(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Configure or query the way a sensor is sampled.

        Sampled values are reported asynchronously using the #sensor-status message.

        Parameters
        ----------
        names : str
            One or more names of sensors whose sampling strategy will be queried or
            configured. Several sensors, comma-separated, may only be configured (all with
            the same strategy) when the server announces v5.1 and flag B; the change is all
            or nothing. A query can only be done on a single sensor.
        strategy : {'none', 'auto', 'event', 'differential', 'differential-rate', 'period', 'event-rate'}, optional
            Type of strategy to use to report the sensor value. If this parameter is
            supplied, it sets the new strategy.
        params : list of str, optional
            Additional strategy parameters (dependent on the strategy type).

        Informs
        -------
        timestamp : float
            Timestamp of the sensor reading (seconds; milliseconds for v4).
        count : {1}
            Number of sensors described in this #sensor-status inform. Always one.
        name : str
            Name of the sensor whose value is being reported.
        value : object
            Value of the named sensor. Type depends on the type of the sensor.

        Returns
        -------
        success : {'ok', 'fail'}
            Whether the sensor-sampling request succeeded.
        names : str
            Name(s) of the sensor queried or configured.
        strategy : str
            Name of the new or current sampling strategy for the sensor(s).
        params : list of str
            Additional strategy parameters.

        Examples
        --------
        ::

            ?sensor-sampling cpu.power.on
            !sensor-sampling ok cpu.power.on none

            ?sensor-sampling cpu.power.on period 0.5
            #sensor-status 1244631611.415231 1 cpu.power.on nominal 1
            !sensor-sampling ok cpu.power.on period 0.5
        """
        args = msg.arguments
        if not args:
            raise FailReply("No sensor name given.")
        names_arg = args[0].decode("utf-8", "replace")
        bulk = self.PROTOCOL_INFO.bulk_set_sensor_sampling and ("," in names_arg or len(args) > 1)
        names = names_arg.split(",") if bulk else [names_arg]
        if len(names) > 1 and len(args) == 1:
            raise FailReply("Cannot query multiple sensors.")
        unknown = [n for n in names if n not in self._sensors]
        if unknown:
            if len(names) == 1:
                raise FailReply(f"Unknown sensor name: {unknown[0]}.")
            # katcp-python shows a list repr (['x']); the names as listed read better.
            raise FailReply(f"Unknown sensor names: {show_names(unknown)}.")
        manager = self._sampling
        assert manager is not None
        client = req.client_connection
        sensors = [self._sensors[n] for n in names]
        if len(args) == 1:
            current = manager.get_strategy(client, sensors[0])
            if current is None:
                return req.make_reply("ok", names_arg, "none")
            strategy_name, params = current.get_sampling_formatted()
            return req.make_reply("ok", names_arg, strategy_name, *params)
        try:
            # Builds every strategy before touching any: bulk set is all or nothing.
            formatted_name, formatted_params = manager.set_strategies(
                client, sensors, args[1], args[2:]
            )
        except SamplingError as exc:
            raise FailReply(str(exc)) from None
        return req.make_reply("ok", names_arg, formatted_name, *formatted_params)

    @returns_future_on_loop
    async def request_sensor_sampling_clear(
        self, req: ClientRequestConnection, msg: Message
    ) -> Message:
        """Set all sampling strategies for this client to none.

        Returns
        -------
        success : {'ok', 'fail'}
            Whether clearing the strategies succeeded.

        Examples
        --------
        ::

            ?sensor-sampling-clear
            !sensor-sampling-clear ok
        """
        # Through the public hook, as katcp-python does, so a subclass overriding
        # clear_strategies() sees every clear.
        self.clear_strategies(req.client_connection)
        return req.make_reply("ok")
