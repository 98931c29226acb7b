"""The objects a resource exposes: :class:`KATCPRequest` and :class:`KATCPSensor`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .._compat import TIMEOUT_TEXT
from ..codec import show_argument
from ..sensor import Sensor, parse_timestamp
from ._types import (
    KATCPReply,
    KATCPResourceInactive,
    KATCPSensorError,
    KATCPSensorReading,
    SensorWaitTimeout,
    StrategyParams,
    escape_name,
)

__all__ = ["KATCPRequest", "KATCPSensor", "SensorManager", "Listener"]

log = logging.getLogger("katcp.resource")

#: A sensor listener: ``listener(sensor, reading)`` when registered with ``reading=True``,
#: else ``listener(received_timestamp, timestamp, status, value)``.
Listener = Callable[..., Any]

_NONE_STRATEGY: StrategyParams = ("none",)


class SensorManager(Protocol):
    """What a :class:`KATCPSensor` needs from the resource that owns it."""

    @property
    def name(self) -> str:
        """Name of the resource."""
        ...

    def get_sampling_strategy(self, sensor_name: str) -> StrategyParams:
        """The memorised strategy of `sensor_name` (``("none",)`` if none)."""
        ...

    def set_sampling_strategy(
        self, sensor_name: str, strategy_and_params: Any
    ) -> Awaitable[tuple[bool, Any]]:
        """Set and memorise a strategy; ``(True, normalised strategy)`` or
        ``(False, error text)`` (katcp-python 0.9.3's sensor manager result)."""
        ...

    def drop_sampling_strategy(self, sensor_name: str) -> None:
        """Forget a memorised strategy."""
        ...

    def poll_sensor(self, sensor_name: str) -> Awaitable[None]:
        """Request the sensor's value with ``?sensor-value`` (which updates the sensor)."""
        ...


class KATCPRequest:
    """A callable KATCP request of a resource: ``resource.req.<name>(*args, timeout=...)``.

    Parameters
    ----------
    request_description
        Dict with keys ``name``, ``description`` (the ``?help`` text) and ``timeout_hint``
        (seconds, or None).
    send
        ``send(name, args, timeout, mid, use_mid)`` returning an awaitable
        :class:`KATCPReply`.
    is_active
        Returns whether the owning resource is active.
    """

    def __init__(
        self,
        request_description: dict[str, Any],
        send: Callable[..., Awaitable[KATCPReply]] | None = None,
        is_active: Callable[[], bool] = lambda: True,
    ) -> None:
        for key in ("name", "description", "timeout_hint"):
            if key not in request_description:
                raise ValueError(f"Required request_description key {key!r} not present")
        if send is not None and not callable(send):
            raise TypeError(f"send must be callable, not {send!r}")
        self._request_description = dict(request_description)
        self._send = send
        self._is_active = is_active
        self.__doc__ = "\n".join(("KATCP Documentation", "===================", self.description))

    @property
    def name(self) -> str:
        """KATCP name of the request."""
        return str(self._request_description["name"])

    @property
    def description(self) -> str:
        """Description of the request, from ``?help``."""
        return str(self._request_description["description"])

    @property
    def timeout_hint(self) -> float | None:
        """Timeout suggested by the server (``?request-timeout-hint``), or None."""
        hint = self._request_description["timeout_hint"]
        return None if hint is None else float(hint)

    def is_active(self) -> bool:
        """True if the resource of this request is active."""
        return self._is_active()

    def __call__(self, *args: Any, **kwargs: Any) -> asyncio.Future[KATCPReply]:
        """Issue the request; return a future of its :class:`KATCPReply`.

        The keywords go to :meth:`issue_request` as given (katcp-python passes them on).

        Parameters
        ----------
        *args
            Request arguments, formatted as :class:`~katcpx.message.Message` arguments.
        timeout
            Seconds to wait for the reply. None: the server's timeout hint for this request,
            or else the client's default.
        mid
            Message id to use; None assigns one automatically if the server supports ids.
        use_mid
            Whether to use a message id (default: if the server supports them).

        Raises
        ------
        KATCPResourceInactive
            If the resource is inactive.
        """
        if not self.is_active():
            raise KATCPResourceInactive(f"Can't make ?{self.name} request; resource is inactive")
        return self.issue_request(*args, **kwargs)

    def issue_request(
        self,
        *args: Any,
        timeout: float | None = None,
        mid: int | None = None,
        use_mid: bool | None = None,
    ) -> asyncio.Future[KATCPReply]:
        """As :meth:`__call__`, without checking whether the resource is active.

        Raises
        ------
        NotImplementedError
            If this request was made without ``send`` and the subclass does not override it.
        """
        if self._send is None:
            raise NotImplementedError(f"{type(self).__name__} must implement issue_request()")
        if timeout is None:
            timeout = self.timeout_hint
        return asyncio.ensure_future(self._send(self.name, args, timeout, mid, use_mid))

    def __repr__(self) -> str:
        return f"<KATCPRequest ?{self.name}>"


class KATCPSensor:
    """A sensor of a resource, updated from ``#sensor-status`` and ``#sensor-value`` informs.

    Parameters
    ----------
    sensor_description
        Dict with keys ``name``, ``description``, ``units``, ``type`` (the KATCP type name,
        e.g. ``"integer"``) and ``params`` (list of formatted type parameters); or in
        katcp-python's form, ``sensor_type`` (a ``Sensor`` type constant) and ``params`` as
        values (``[-1000, 1000]``).
    sensor_manager
        The owning resource (see :class:`SensorManager`).
    """

    def __init__(self, sensor_description: dict[str, Any], sensor_manager: SensorManager) -> None:
        self._manager = sensor_manager
        description = dict(sensor_description)
        if "type" not in description and "sensor_type" in description:
            # katcp-python's form (katcp.Sensor's arguments): the type as a constant and the
            # params as values, as its tests and inspecting client pass them.
            type_name = Sensor.SENSOR_TYPE_NAMES.get(description["sensor_type"], "")
            description["type"] = type_name
            if description.get("description") is None:  # katcp.Sensor's default text
                units = description.get("units") or ""
                unit_text = f"in unit {units}" if units else "with no unit"
                description["description"] = (
                    f"{type_name.capitalize()} sensor {description['name']!r} {unit_text}"
                )
        self._description = description
        self._name: str = str(sensor_description["name"])
        self._listeners: dict[Any, tuple[Listener, bool]] = {}
        self._reading = KATCPSensorReading(0.0, 0.0, Sensor.UNKNOWN, None)
        self._parser = _parser_for(str(description.get("type", "string")), self.formatted_params)
        #: KATCP major version used to parse timestamps and values.
        self.major = 5

    # -- description -----------------------------------------------------------------------

    @property
    def parent_name(self) -> str:
        """Name of the resource this sensor belongs to."""
        return self._manager.name

    @property
    def name(self) -> str:
        """KATCP name of the sensor."""
        return self._name

    @property
    def normalised_name(self) -> str:
        """The name as a Python identifier."""
        return escape_name(self._name)

    @property
    def description(self) -> str:
        """The server's description of the sensor."""
        return str(self._description.get("description", ""))

    @property
    def units(self) -> str:
        """Units of the sensor value."""
        return str(self._description.get("units", ""))

    @property
    def type(self) -> str:
        """KATCP type name, e.g. ``"integer"``."""
        return str(self._description.get("type", "string"))

    @property
    def params(self) -> list[Any]:
        """Type parameters as Python values, in :attr:`katcpx.Sensor.params`'s form.

        ``int`` for integer sensors, ``float`` for float, ``str`` for discrete, ``[]`` for
        the other types: what katcp-python's ``InspectingClientAsync.future_get_sensor``
        gives (its ``KATCPSensor`` has no ``params``; this is a katcpx extension). Params
        a server sends that do not parse as the type read as ``[]``; their text is in
        :attr:`formatted_params`.
        """
        return list(self._parser.params)

    @property
    def formatted_params(self) -> list[bytes]:
        """Type parameters as the server sent them (e.g. ``[b"0", b"10"]``)."""
        return [
            p if isinstance(p, bytes) else str(p).encode()
            for p in self._description.get("params", ())
        ]

    def same_description(self, other: dict[str, Any]) -> bool:
        """Whether `other` describes this sensor identically."""
        return all(self._description.get(k) == other.get(k) for k in other)

    # -- readings --------------------------------------------------------------------------

    @property
    def reading(self) -> KATCPSensorReading:
        """Most recently received reading."""
        return self._reading

    @property
    def value(self) -> Any:
        """Most recently received value."""
        return self._reading.value

    @property
    def status(self) -> str:
        """Most recently received status, as a string."""
        return self._reading.status

    @property
    def sampling_strategy(self) -> StrategyParams:
        """The memorised sampling strategy, ``("none",)`` if none."""
        return self._manager.get_sampling_strategy(self._name)

    def parse_value(self, s_value: bytes | str) -> Any:
        """Parse a formatted value to the sensor's Python type."""
        if isinstance(s_value, str):
            s_value = s_value.encode("utf-8")
        return self._parser.parse_value(s_value, self.major)

    def set(self, timestamp: float, status: int, value: Any) -> None:
        """Store a reading (received now) and call the listeners."""
        reading = KATCPSensorReading(time.time(), timestamp, status, value)
        self._reading = reading
        self.call_listeners(reading)

    def set_value(
        self, value: Any, status: int = Sensor.NOMINAL, timestamp: float | None = None
    ) -> None:
        """Set the value with optional status and timestamp (for testing and simulation)."""
        self.set(time.time() if timestamp is None else timestamp, status, value)

    def set_formatted(
        self, raw_timestamp: bytes, raw_status: bytes, raw_value: bytes, major: int = 5
    ) -> None:
        """Set from KATCP-formatted parts, as received in ``#sensor-status``."""
        timestamp = parse_timestamp(raw_timestamp, major)
        try:
            status = Sensor.STATUS_NAMES_RAW[raw_status]
        except KeyError:
            raise ValueError(f"unknown sensor status {show_argument(raw_status)}") from None
        # A value that does not parse (a non-nominal reading may carry anything) is kept raw.
        try:
            value = self._parser.parse_value(raw_value, major)
        except ValueError:
            value = raw_value.decode("utf-8", "replace")
        self.set(timestamp, status, value)

    # -- strategies ------------------------------------------------------------------------

    def set_strategy(self, strategy: str, params: Any = None) -> Awaitable[tuple[bool, Any]]:
        """Set the sampling strategy (backwards-compatible form of :meth:`set_sampling_strategy`).

        Parameters
        ----------
        strategy
            Strategy name, e.g. ``"event"``.
        params
            Strategy parameters: a space-separated string, a sequence or a single value.

        Returns
        -------
        Awaitable
            Resolves with ``(True, normalised strategy)``, or ``(False, error text)`` when
            the strategy could not be set (katcp-python 0.9.3's result; nothing is raised).
        """
        if params is None or params == "":
            args: list[str] = []
        elif isinstance(params, str):
            args = params.split()
        elif isinstance(params, Sequence):
            args = [str(p) for p in params]
        else:
            args = [str(params)]
        return self._manager.set_sampling_strategy(self._name, " ".join([strategy, *args]))

    def set_sampling_strategy(self, strategy: Any) -> Awaitable[tuple[bool, Any]]:
        """Set (and memorise) the sampling strategy, e.g. ``"event"`` or ``("period", 1)``.

        Resolves with ``(success, info)`` as :meth:`set_strategy` does.
        """
        return self._manager.set_sampling_strategy(self._name, strategy)

    def drop_sampling_strategy(self) -> None:
        """Forget the memorised strategy so it is not re-applied; the current one stays."""
        self._manager.drop_sampling_strategy(self._name)

    # -- listeners -------------------------------------------------------------------------

    @staticmethod
    def _key(listener: Listener) -> Any:
        try:
            hash(listener)
        except TypeError:
            return id(listener)
        return listener

    def register_listener(self, listener: Listener, reading: bool = False) -> None:
        """Add a callable called on every update.

        Parameters
        ----------
        listener
            ``listener(sensor, reading)`` if `reading`, else
            ``listener(received_timestamp, timestamp, status, value)``.
        reading
            Which signature `listener` has.
        """
        self._listeners[self._key(listener)] = (listener, reading)

    def unregister_listener(self, listener: Listener) -> None:
        """Remove a listener added with :meth:`register_listener` (no error if absent)."""
        self._listeners.pop(self._key(listener), None)

    def is_listener(self, listener: Listener) -> bool:
        """Whether `listener` is registered."""
        return self._key(listener) in self._listeners

    def clear_listeners(self) -> None:
        """Remove every listener."""
        self._listeners = {}

    def listeners(self) -> list[tuple[Listener, bool]]:
        """The registered ``(listener, reading)`` pairs."""
        return list(self._listeners.values())

    def call_listeners(self, reading: KATCPSensorReading) -> None:
        """Call every listener with `reading`; exceptions are logged, not raised."""
        for listener, use_reading in list(self._listeners.values()):
            try:
                if use_reading:
                    listener(self, reading)
                else:
                    listener(
                        reading.received_timestamp, reading.timestamp, reading.status, reading.value
                    )
            except Exception:
                log.exception("Unhandled exception calling KATCPSensor listener %r", listener)

    # -- polling and waiting ---------------------------------------------------------------

    async def get_reading(self) -> KATCPSensorReading:
        """Fetch a fresh reading with ``?sensor-value`` (listeners are called too)."""
        await self._manager.poll_sensor(self._name)
        return self._reading

    async def get_value(self) -> Any:
        """Fetch a fresh value with ``?sensor-value``."""
        return (await self.get_reading()).value

    async def get_status(self) -> str:
        """Fetch a fresh status with ``?sensor-value``."""
        return (await self.get_reading()).status

    def wait(self, condition_or_value: Any, timeout: float | None = None) -> asyncio.Future[bool]:
        """Wait until the sensor satisfies a condition.

        Parameters
        ----------
        condition_or_value
            A value compared with the sensor value, or a callable taking the
            :class:`KATCPSensorReading` and returning whether the condition holds.
        timeout
            Seconds to wait; None waits forever.

        Returns
        -------
        asyncio.Future
            Resolves with True once the condition holds (the current reading counts), or
            fails with :class:`SensorWaitTimeout` (a ``TimeoutError``) after `timeout`.

        Raises
        ------
        KATCPSensorError
            If the sensor has no sampling strategy (it would never be updated).
        """
        if isinstance(condition_or_value, Sequence) and not isinstance(
            condition_or_value, (str, bytes)
        ):
            raise NotImplementedError("Currently only single conditions are supported")
        if callable(condition_or_value):
            test: Callable[[KATCPSensorReading], Any] = condition_or_value
        else:

            def test(reading: KATCPSensorReading) -> bool:
                return bool(reading.value == condition_or_value)

        if self.sampling_strategy == _NONE_STRATEGY:
            raise KATCPSensorError("Cannot wait on a sensor that does not have a strategy set")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()

        def check(_sensor: KATCPSensor, reading: KATCPSensorReading) -> None:
            if fut.done():
                return
            try:
                ok = test(reading)
            except Exception as exc:
                fut.set_exception(exc)
                return
            if ok:
                fut.set_result(True)

        def on_timeout() -> None:
            if not fut.done():
                fut.set_exception(
                    SensorWaitTimeout(TIMEOUT_TEXT)  # katcp-python's (tornado's) text
                )

        handle = loop.call_later(timeout, on_timeout) if timeout is not None else None

        def cleanup(_fut: asyncio.Future[bool]) -> None:
            self.unregister_listener(check)
            if handle is not None:
                handle.cancel()

        fut.add_done_callback(cleanup)
        self.register_listener(check, reading=True)
        check(self, self._reading)
        return fut

    def __repr__(self) -> str:
        return f"<KATCPSensor {self.parent_name}.{self._name} {self.type} value={self.value!r}>"


#: Parsing sensors by (type name, params): thousands of like sensors share one.
_PARSERS: dict[tuple[str, tuple[bytes, ...]], Sensor] = {}


def _parser_for(type_name: str, params: list[bytes]) -> Sensor:
    key = (type_name, tuple(params))
    parser = _PARSERS.get(key)
    if parser is None:
        if len(_PARSERS) > 10_000:  # bound the cache against odd servers
            _PARSERS.clear()
        parser = _PARSERS[key] = _make_parser("sensor", type_name, params)
    return parser


def _make_parser(name: str, type_name: str, params: list[bytes]) -> Sensor:
    """A :class:`~katcpx.sensor.Sensor` used only to parse values of sensors of this type.

    Servers may announce parameters that katcpx's own (strict) sensors refuse; the fallbacks
    keep the values readable rather than failing the sync.
    """
    try:
        stype = Sensor.parse_type(type_name)
    except ValueError:
        stype = Sensor.STRING
    plist: list[Any] = []
    if stype == Sensor.DISCRETE:
        plist = [p.decode("utf-8", "replace") for p in params]
    elif stype in (Sensor.INTEGER, Sensor.FLOAT) and params:
        try:
            plist = Sensor.parse_params(stype, params)
        except ValueError:
            plist = []
    for candidate_name in (name, "sensor"):
        try:
            return Sensor(stype, candidate_name, "", "", plist)
        except (ValueError, TypeError):
            continue
    try:
        return Sensor(stype, "sensor", "", "", [])
    except (ValueError, TypeError):
        return Sensor(Sensor.STRING, "sensor", "", "", [])
