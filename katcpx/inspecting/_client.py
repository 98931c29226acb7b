"""katcp-python's ``InspectingClientAsync``: a client that keeps a model of a device.

It inspects the device's requests (``?help``, with ``?request-timeout-hint`` when flag T is
announced) and sensors (``?sensor-list``), re-inspects on ``#interface-changed``, and
reports its progress through :class:`InspectingClientStateType` states. An inspection that
is not answered ``ok`` raises :class:`SyncError` and is retried with
:class:`ExponentialRandomBackoff`; the model it had is kept (spec 5.1 §2: only ``ok`` is
success). Everything runs on the client's ioloop; public coroutine methods return futures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tornado.ioloop import IOLoop

from ..asyncutil import AsyncEvent, AsyncState, future_timeout_manager, until_any, until_later
from ..compat import ensure_native_str
from ..message import Message
from ..sensor import Sensor
from ._inspection import InspectionMixin, returns_future
from ._types import (
    ExponentialRandomBackoff,
    InformHookClient,
    InspectingClientStateType,
    RequestType,
    SyncError,
    ic_logger,
)

__all__ = ["InspectingClientAsync"]

T = TypeVar("T")
State = InspectingClientStateType


_DISCONNECTED = State(False, False, False, False)
_CONNECTED = State(True, False, False, False)
_SYNCED = State(True, True, False, True)


class InspectingClientAsync(InspectionMixin):
    """Inspect a KATCP device and keep its requests and sensors up to date.

    Parameters
    ----------
    host, port
        The device's address.
    ioloop
        The loop to run on (``IOLoop.current()`` by default).
    initial_inspection
        Inspect at once on connecting (default True).
    auto_reconnect
        Reconnect after the connection drops.
    logger
        Where to log.
    """

    #: Makes sensor objects: ``sensor_factory(sensor_type=, name=, description=, units=,
    #: params=)``. Set it before :meth:`connect`.
    sensor_factory: Callable[..., Any] = Sensor
    #: Makes request objects: ``request_factory(name=, description=, timeout_hint=)``.
    request_factory: Callable[..., Any] = RequestType
    #: Seconds one full inspection may take.
    sync_timeout = 20
    #: First and largest retry delays (seconds) after a failed inspection.
    initial_resync_timeout = 5
    max_resync_timeout = 90

    def __init__(
        self,
        host: str,
        port: int,
        ioloop: IOLoop | None = None,
        initial_inspection: bool | None = None,
        auto_reconnect: bool = True,
        logger: logging.Logger = ic_logger,
    ) -> None:
        self._logger = logger
        #: An :class:`ExponentialRandomBackoff` once the state loop runs.
        self.resync_delay: ExponentialRandomBackoff | None = None
        self.initial_inspection = True if initial_inspection is None else bool(initial_inspection)
        self._requests_index: dict[str, dict[str, Any]] = {}
        self._sensors_index: dict[str, dict[str, Any]] = {}
        self._sensor_object_cache: dict[str, Any] = {}
        self._update_on_lookup = True
        self._running = False
        self._state_cb: Callable[..., Any] | None = None
        self.katcp_client = self.inform_hook_client_factory(
            host, port, auto_reconnect=auto_reconnect, logger=logger
        )
        self.ioloop = ioloop or IOLoop.current()
        self.katcp_client.set_ioloop(self.ioloop)
        self._connected = AsyncEvent(self.ioloop)
        self._disconnected = AsyncEvent(self.ioloop)
        self._interface_changed = AsyncEvent(self.ioloop)
        hook = self.katcp_client.hook_inform
        hook("sensor-status", self._cb_inform_sensor_status)
        hook("interface-changed", self._cb_inform_interface_change)
        hook("device-changed", self._cb_inform_interface_change)
        hook("device-changed", self._cb_inform_deprecated)
        self.katcp_client.notify_connected = self._cb_connection_state
        self.valid_states = frozenset(
            {
                _DISCONNECTED,
                _CONNECTED,
                State(True, False, True, True),
                State(True, False, False, True),
                _SYNCED,
            }
        )
        self._state = AsyncState(self.valid_states, _DISCONNECTED, self.ioloop)

    def inform_hook_client_factory(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        """Make the underlying client (an :class:`InformHookClient`); override to customise."""
        return InformHookClient(host, port, *args, **kwargs)

    # -- state -----------------------------------------------------------------------

    @property
    def state(self) -> InspectingClientStateType:
        """The current state."""
        return self._state.state  # type: ignore[return-value]

    @property
    def sensors(self) -> list[str]:
        """Names of the known sensors."""
        return list(self._sensors_index)

    @property
    def requests(self) -> list[str]:
        """Names of the known requests."""
        return list(self._requests_index)

    @property
    def connected(self) -> bool:
        """Whether the client is connected."""
        return bool(self.katcp_client.is_connected())

    @property
    def synced(self) -> bool:
        """Whether the model matches the device."""
        return bool(self.state.synced)

    @property
    def bind_address(self) -> tuple[str, int]:
        """The device's ``(host, port)``."""
        return self.katcp_client.bind_address

    @property
    def bind_address_string(self) -> str:
        """The device's address as ``host:port``."""
        return self.katcp_client.bind_address_string

    def preset_protocol_flags(self, protocol_flags: Any) -> None:
        """Fix the protocol flags instead of detecting them (see the client's method)."""
        self.katcp_client.preset_protocol_flags(protocol_flags)

    def set_ioloop(self, ioloop: IOLoop) -> None:
        """Run the underlying client on ``ioloop``."""
        self.katcp_client.set_ioloop(ioloop)

    def is_connected(self) -> bool:
        """Whether the client is connected."""
        return self.connected

    def until_connected(self, timeout: float | None = None) -> Any:
        """Future resolving once connected and the protocol is known."""
        return self.katcp_client.until_protocol(timeout=timeout)

    def until_synced(self, timeout: float | None = None) -> Any:
        """Future resolving once synced."""
        return self._state.until_state(_SYNCED, timeout=timeout)

    def until_not_synced(self, timeout: float | None = None) -> Any:
        """Future resolving once not synced."""
        states = [s for s in self.valid_states if not s.synced]
        return self._state.until_state_in(*states, timeout=timeout)

    def until_data_synced(self, timeout: float | None = None) -> Any:
        """Future resolving once the inspection data is in."""
        states = [s for s in self.valid_states if s.data_synced]
        return self._state.until_state_in(*states, timeout=timeout)

    def until_state(
        self, desired_state: InspectingClientStateType, timeout: float | None = None
    ) -> Any:
        """Future resolving once in ``desired_state``."""
        return self._state.until_state(desired_state, timeout=timeout)

    def set_state_callback(self, cb: Callable[..., Any] | None) -> None:
        """Call ``cb(state, model_changes)`` on each state change (may return a future,
        which the state loop waits for)."""
        self._state_cb = cb

    # -- lifecycle -------------------------------------------------------------------

    @returns_future
    async def connect(self, timeout: float | None = None) -> None:
        """Start the client and the state loop; with ``timeout``, wait to be connected.

        Raises
        ------
        tornado.util.TimeoutError
            If not running (or connected) within ``timeout`` seconds.
        """
        if self._running:
            raise RuntimeError("InspectingClientAsync is already running")
        maybe_timeout = future_timeout_manager(timeout)
        self.katcp_client.start()
        try:
            await maybe_timeout(self.katcp_client.until_running())
        except Exception as err:
            self._logger.error("Failed to start katcp_client: %s", err)
            self.katcp_client.stop()
            raise
        if timeout:
            await maybe_timeout(self.katcp_client.until_connected())
        self._running = True
        task = self._state_loop()
        if asyncio.isfuture(task):  # tests may replace the loop with a mock
            task.add_done_callback(self._log_loop_end)

    def _log_loop_end(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._logger.error("state loop failed", exc_info=task.exception())

    def start(self, timeout: float | None = None) -> Any:
        """Same as :meth:`connect`."""
        return self.connect(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the state loop and the client."""
        self._running = False
        self.katcp_client.stop(timeout)

    close = stop

    def until_stopped(self, timeout: float | None = None) -> Any:
        """Future resolving once the client stopped."""
        return self.katcp_client.until_stopped(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the client's thread (if it has one) to end."""
        self.katcp_client.join(timeout)

    async def _send_state(
        self,
        connected: bool,
        synced: bool,
        model_changed: bool,
        data_synced: bool,
        model_changes: Any = None,
    ) -> None:
        state = State(connected, synced, model_changed, data_synced)
        self._state.set_state(state)
        self._logger.debug("InspectingClient state changed to %s", state)
        if self._state_cb is not None:
            result = self._state_cb(state, model_changes)
            if asyncio.iscoroutine(result) or asyncio.isfuture(result):
                await result
        await asyncio.sleep(0)  # let waiters on this state run before the next one

    @returns_future
    async def _state_loop(self) -> None:
        self.resync_delay = backoff = ExponentialRandomBackoff(
            self.initial_resync_timeout, self.max_resync_timeout
        )
        is_connected = self.katcp_client.is_connected
        last_sync_failed = False
        while self._running:
            await self._send_state(is_connected(), False, False, False)
            try:
                await self.katcp_client.until_connected()
                await self._send_state(is_connected(), False, False, False)
                await until_any(self.katcp_client.until_protocol(), self._disconnected.until_set())
                if self.initial_inspection:
                    if not is_connected():
                        continue
                    changes = await self.inspect()
                    await self._send_state(True, False, bool(changes), True, model_changes=changes)
                else:
                    self.initial_inspection = True
                if not is_connected():
                    continue
                await self._send_state(True, True, False, True)
                if last_sync_failed:
                    self._logger.warning("Successfully resynced with %s", self.bind_address_string)
                    last_sync_failed = False
                backoff.success()
                await until_any(self._interface_changed.until_set(), self._disconnected.until_set())
                self._interface_changed.clear()
            except SyncError as exc:
                last_sync_failed = True
                wait = backoff.delay
                backoff.failed()
                self._logger.warning(
                    "Error syncing with device %s: %s. Retrying in %ss.",
                    self.bind_address_string,
                    exc,
                    wait,
                )
                await until_later(wait)
            except Exception:
                last_sync_failed = True
                wait = backoff.delay
                backoff.failed()
                self._logger.exception(
                    "Unhandled exception in client-sync loop; disconnecting, retrying in %ss.",
                    wait,
                )
                self.katcp_client.disconnect()
                await until_later(wait)
        try:
            await self._send_state(False, False, False, False)
        except Exception:
            self._logger.exception("Unhandled exception after client-sync loop ended.")

    # -- inspection ------------------------------------------------------------------

    def handle_sensor_value(self) -> None:
        """Also take ``#sensor-value`` informs as sensor updates."""
        self.katcp_client.hook_inform("sensor-value", self._cb_inform_sensor_status)

    # -- lookups ---------------------------------------------------------------------

    async def _check(
        self,
        index: Callable[[], dict[str, Any]],
        inspect: Callable[[str], Any],
        name: str,
        update: bool | None,
    ) -> bool:
        await self.until_data_synced()
        if name in index():
            return True
        if update or (update is None and self._update_on_lookup):
            await inspect(name)
            return name in index()
        return False

    def future_check_sensor(self, name: str, update: bool | None = None) -> Any:
        """Whether sensor ``name`` exists (a future); asks the device if unknown (unless
        ``update`` is False)."""
        check = self._check(lambda: self._sensors_index, self.inspect_sensors, name, update)
        return asyncio.ensure_future(check)

    @returns_future
    async def future_get_sensor(self, name: str, update: bool | None = None) -> Any:
        """The sensor object for ``name`` (made with :attr:`sensor_factory`), or None."""
        if not await self.future_check_sensor(name, update):
            return None
        info = self._sensors_index[name]
        obj = info.get("obj")
        if obj is None:
            sensor_type = Sensor.parse_type(info["sensor_type"])
            params = Sensor.parse_params(sensor_type, [p.encode() for p in info.get("params", [])])
            obj = self.sensor_factory(
                name=name,
                sensor_type=sensor_type,
                description=info.get("description"),
                units=info.get("units"),
                params=params,
            )
            info["obj"] = obj
            self._sensor_object_cache[name] = obj
        return obj

    def future_check_request(self, name: str, update: bool | None = None) -> Any:
        """Whether request ``name`` exists (a future); asks the device if unknown (unless
        ``update`` is False)."""
        check = self._check(lambda: self._requests_index, self.inspect_requests, name, update)
        return asyncio.ensure_future(check)

    @returns_future
    async def future_get_request(self, name: str, update: bool | None = None) -> Any:
        """The request object for ``name`` (made with :attr:`request_factory`), or None."""
        if not await self.future_check_request(name, update):
            return None
        info = self._requests_index[name]
        obj = info.get("obj")
        if obj is None:
            obj = self.request_factory(**{k: v for k, v in info.items() if not k.startswith("_")})
            info["obj"] = obj
        return obj

    @returns_future
    async def update_sensor(self, name: str, timestamp: bytes, status: bytes, value: bytes) -> None:
        """Apply a formatted reading to sensor ``name``'s object (made on first use)."""
        sensor = self._sensor_object_cache.get(name)
        if sensor is None:
            sensor = await self.future_get_sensor(name)
        if sensor is None:
            self._logger.error(
                'Received update for "%s", but could not create sensor object.', name
            )
            return
        sensor.set_formatted(timestamp, status, value, self.katcp_client.protocol_flags.major)

    def simple_request(self, request: str, *args: Any, **kwargs: Any) -> Any:
        """Send ``?request *args``; a future of ``(reply, informs)``.

        Keywords ``timeout``, ``mid`` and ``use_mid`` as for the client's ``future_request``.
        """
        msg = Message.request(request, *args, mid=kwargs.get("mid"))
        return self.katcp_client.future_request(msg, kwargs.get("timeout"), kwargs.get("use_mid"))

    # -- informs and connection ------------------------------------------------------

    def _cb_connection_state(self, connected: bool) -> None:
        if connected:
            self._disconnected.clear()
            self._connected.set()
        else:
            self._connected.clear()
            self._disconnected.set()

    def _cb_inform_sensor_status(self, msg: Message) -> None:
        args = msg.arguments
        count = int(args[1])
        if len(args) != 2 + 3 * count:
            self._logger.error("malformed #%s from %s: %s", msg.name, self.bind_address_string, msg)
            return
        for n in range(count):
            name = ensure_native_str(args[2 + 3 * n])
            self.update_sensor(name, args[0], args[3 + 3 * n], args[4 + 3 * n])

    def mark_interface_changed(self) -> None:
        """Re-inspect the device, as when it sends ``#interface-changed``."""
        self._cb_inform_interface_change(Message.inform("interface-changed"))

    def _cb_inform_interface_change(self, msg: Message) -> None:
        self._logger.debug("interface changed: %s", msg)
        self._interface_changed.set()
        if self.state.synced:
            # Unsynced at once, not on the loop's next turn: a reply read in the same batch
            # as this inform must not find the model still "synced" (katcp-python's futures
            # ran callbacks synchronously, which gave the same order).
            self._state.set_state(State(True, False, False, True))

    def _cb_inform_deprecated(self, msg: Message) -> None:
        self._logger.warning("Received a deprecated inform: %s.", msg.name)
