"""KATCP sensors: typed values with a status and a timestamp, and their wire formats.

This module is sans-I/O: no sockets, no event loop. It implements katcp-python 0.9.3's
:class:`Sensor` API (spec rev 5.1 section 7) for KATCP major versions 4 and 5.

Differences from katcp-python, each following the spec or the katcpx design:

* Sensor names are checked against spec 5.1 (``a-z A-Z 0-9 . - _``); katcp-python accepts any
  name.
* :meth:`Sensor.set_value` refuses values of the wrong Python type and, for integer and float
  sensors declared with ``[min, max]`` params, values outside that range (katcp-python accepts
  them silently).
* Float and timestamp values are formatted so that parsing gives back the very same float
  (katcp-python rounds timestamps to microseconds).
* Statuses ``unreachable`` and ``inactive`` are new in KATCP v5. Formatting for ``major < 5``
  sends ``failure`` and ``unknown`` instead, the nearest v4 statuses.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from ._sensor_constants import SensorConstants
from .codec import (
    as_text,
    check_sensor_name,
    check_string,
    format_timestamp,
    parse_timestamp,
    show_argument,
    type_name,
)
from .errors import KatcpSyntaxError, KatcpTypeError
from .flags import DEFAULT_KATCP_MAJOR, SEC_TS_KATCP_MAJOR

__all__ = [
    "Reading",
    "Sensor",
    "SensorObserver",
    "format_timestamp",
    "parse_timestamp",
]

_tuple_new = tuple.__new__


class Reading(NamedTuple):
    """One sensor reading: when, how healthy, and what value.

    Attributes
    ----------
    timestamp : float
        Seconds since the Unix epoch (UTC) at which the value was determined.
    status : int
        One of the ``Sensor`` status constants (``Sensor.NOMINAL`` etc.).
    value : object
        The value, of the Python type that suits the sensor type.
    """

    timestamp: float
    status: int
    value: Any


class SensorObserver(Protocol):
    """What :meth:`Sensor.attach` accepts: anything with ``update(sensor, reading)``."""

    def update(self, sensor: Sensor, reading: Reading) -> None:
        """Receive a new reading of `sensor`."""


class Sensor(SensorConstants):
    """A KATCP sensor: a named, typed value with a status and a timestamp.

    Parameters
    ----------
    sensor_type : int or type
        One of the type constants (``Sensor.INTEGER`` ...), or a shortcut: ``int``, ``float``,
        ``str`` or ``bool``.
    name : str
        The sensor name. Spec 5.1 allows only ``a-z A-Z 0-9 . - _``; other names are refused.
    description : str, optional
        A short description. A default naming the type and units is made if None.
    units : str, optional
        Units of the value, ``""`` if none. Timestamp sensors may not have units (the spec
        fixes them as seconds, or milliseconds before v5).
    params : list, optional
        Type-dependent parameters:

        * ``INTEGER``, ``FLOAT``: optional ``[nominal-min, nominal-max]`` or the spec 5 form
          ``[nominal-min, nominal-max, warn-min, warn-max]``. They are the expected range, not
          a limit: :meth:`set_value` accepts values outside it and reports them with a
          ``WARN`` or ``ERROR`` status (spec 5.1 section 7.2).
        * ``DISCRETE``: required, every value the sensor may take (str or bytes), at least one.
        * all other types: must be empty.
    default : object, optional
        Initial value. Defaults per type: 0, 0.0, False, ``LRU_NOMINAL``, the first discrete
        value, ``""``, 0.0, ``("0.0.0.0", None)``. A numeric sensor whose range excludes zero
        starts at the range minimum.
    initial_status : int, optional
        Initial status, a key of ``Sensor.STATUSES``; ``Sensor.UNKNOWN`` if None.

    Raises
    ------
    ValueError
        For an invalid name, unknown type or status, bad params or a bad default.
    TypeError
        For params or a default of the wrong Python type.

    Notes
    -----
    The current reading is one :class:`Reading` tuple stored in one attribute, so a reader in
    any thread sees a whole reading, never parts of two. :meth:`set` notifies observers in the
    setter's thread.
    """

    def __init__(
        self,
        sensor_type: int | type,
        name: str,
        description: str | None = None,
        units: str | None = None,
        params: Sequence[Any] | None = None,
        default: Any = None,
        initial_status: int | None = None,
    ) -> None:
        if isinstance(sensor_type, type):
            if sensor_type not in self.SENSOR_SHORTCUTS:
                raise ValueError(f"no sensor type for Python type {sensor_type.__name__}")
            sensor_type = self.SENSOR_SHORTCUTS[sensor_type]
        if sensor_type not in self.CODECS:
            raise ValueError(f"unknown sensor type {sensor_type!r}")
        name = check_sensor_name(name)
        units = "" if units is None else as_text(units, "units")
        if initial_status is None:
            initial_status = self.UNKNOWN
        if initial_status not in self.STATUSES:
            raise ValueError(f"unknown sensor status {initial_status!r}")
        if sensor_type == self.TIMESTAMP and units:
            raise ValueError(
                "timestamp sensors cannot have units: the spec fixes them as seconds "
                "(milliseconds before KATCP v5)"
            )

        checker, formatter, parser, default_value = self.CODECS[sensor_type]
        self._sensor_type = sensor_type
        self.stype = self.type = self.SENSOR_TYPE_NAMES[sensor_type]
        self.name = name
        self.units = units
        self._formatter = formatter
        self._parser = parser
        self._min: Any = None
        self._max: Any = None
        self._warn_min: Any = None
        self._warn_max: Any = None
        self._discrete_values: frozenset[str] | None = None
        self._check = checker

        given = params
        params = list(params) if params is not None else []
        if sensor_type in (self.INTEGER, self.FLOAT):
            params = [checker(p) for p in params]
            if len(params) not in (0, 2, 4):
                raise ValueError(
                    f"{self.stype} sensor params must be [min, max] or "
                    f"[nominal-min, nominal-max, warn-min, warn-max], not {params!r}"
                )
            if len(params) >= 2:
                if not params[0] <= params[1]:
                    raise ValueError(f"sensor range minimum exceeds maximum: {params!r}")
                if not params[0] <= default_value <= params[1]:
                    default_value = params[0]
            if len(params) >= 2:
                self._min, self._max = params[0], params[1]
            if len(params) == 4:
                if not params[2] <= params[0] <= params[1] <= params[3]:
                    raise ValueError(
                        f"warn range must contain the nominal range: "
                        f"need warn-min <= nominal-min <= nominal-max <= warn-max, got {params!r}"
                    )
                self._warn_min, self._warn_max = params[2], params[3]
        elif sensor_type == self.DISCRETE:
            params = [as_text(p, "discrete value") for p in params]
            if not params:
                raise ValueError("a discrete sensor needs at least one value in params")
            if len(set(params)) != len(params):
                raise ValueError(f"discrete sensor values are repeated: {params!r}")
            for p in params:
                check_string(p)
            self._discrete_values = frozenset(params)
            default_value = params[0]
        elif params:
            raise ValueError(f"{self.stype} sensors take no params, got {params!r}")
        # katcp-python keeps a numeric sensor's params as given (a tuple stays a tuple);
        # discrete values become a list of str, as there.
        numeric = sensor_type in (self.INTEGER, self.FLOAT)
        self.params: Any = tuple(params) if numeric and isinstance(given, tuple) else params
        self.formatted_params = [formatter(p, DEFAULT_KATCP_MAJOR) for p in params]

        if description is None:
            unit_description = f"in unit {units}" if units else "with no unit"
            description = f"{self.stype.capitalize()} sensor {name!r} {unit_description}"
        self.description = as_text(description, "description")

        if default is not None:
            default_value = self._check_value(default)
        self._observers: tuple[SensorObserver, ...] = ()
        self._observers_lock = threading.Lock()
        # One tuple in one attribute: the unit of atomicity for readers in other threads.
        self._current_reading = Reading(time.time(), initial_status, default_value)

    def __repr__(self) -> str:
        cls = type(self)
        return f"<{cls.__module__}.{cls.__name__} {self.stype} name={self.name!r} at {id(self):#x}>"

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def integer(
        cls,
        name: str,
        description: str | None = None,
        unit: str = "",
        params: Sequence[int] | None = None,
        default: int | None = None,
        initial_status: int | None = None,
    ) -> Sensor:
        """Make an integer sensor; `params` is an optional ``[min, max]``; default 0."""
        return cls(cls.INTEGER, name, description, unit, params, default, initial_status)

    @classmethod
    def float(
        cls,
        name: str,
        description: str | None = None,
        unit: str = "",
        params: Sequence[builtins.float] | None = None,
        default: builtins.float | None = None,
        initial_status: int | None = None,
    ) -> Sensor:
        """Make a float sensor; `params` is an optional ``[min, max]``; default 0.0."""
        return cls(cls.FLOAT, name, description, unit, params, default, initial_status)

    @classmethod
    def boolean(
        cls,
        name: str,
        description: str | None = None,
        unit: str = "",
        default: bool | None = None,
        initial_status: int | None = None,
    ) -> Sensor:
        """Make a boolean sensor; default False."""
        return cls(cls.BOOLEAN, name, description, unit, None, default, initial_status)

    @classmethod
    def lru(
        cls,
        name: str,
        description: str | None = None,
        unit: str = "",
        default: int | None = None,
        initial_status: int | None = None,
    ) -> Sensor:
        """Make an lru sensor (deprecated in KATCP v5); default ``Sensor.LRU_NOMINAL``."""
        return cls(cls.LRU, name, description, unit, None, default, initial_status)

    @classmethod
    def string(
        cls,
        name: str,
        description: str | None = None,
        unit: str = "",
        default: str | bytes | None = None,
        initial_status: int | None = None,
    ) -> Sensor:
        """Make a string sensor; default ``""``."""
        return cls(cls.STRING, name, description, unit, None, default, initial_status)

    @classmethod
    def discrete(
        cls,
        name: str,
        description: str | None = None,
        unit: str = "",
        params: Sequence[str | bytes] | None = None,
        default: str | None = None,
        initial_status: int | None = None,
    ) -> Sensor:
        """Make a discrete sensor; `params` lists every allowed value; default the first."""
        return cls(cls.DISCRETE, name, description, unit, params, default, initial_status)

    @classmethod
    def timestamp(
        cls,
        name: str,
        description: str | None = None,
        unit: str = "",
        default: builtins.float | None = None,
        initial_status: int | None = None,
    ) -> Sensor:
        """Make a timestamp sensor (seconds since the Unix epoch); default 0.0."""
        return cls(cls.TIMESTAMP, name, description, unit, None, default, initial_status)

    @classmethod
    def address(
        cls,
        name: str,
        description: str | None = None,
        unit: str = "",
        default: tuple[str, int | None] | None = None,
        initial_status: int | None = None,
    ) -> Sensor:
        """Make an address sensor holding ``(host, port)``; default ``("0.0.0.0", None)``."""
        return cls(cls.ADDRESS, name, description, unit, None, default, initial_status)

    # -- observers ------------------------------------------------------------------------

    def attach(self, observer: SensorObserver) -> None:
        """Attach an observer: ``observer.update(sensor, reading)`` is called on every set.

        Thread-safe. Attaching an observer that is already attached does nothing.
        """
        with self._observers_lock:
            if observer not in self._observers:
                # Copy on write: notify() iterates over a tuple nobody changes.
                self._observers = (*self._observers, observer)

    def detach(self, observer: SensorObserver) -> None:
        """Detach an observer; thread-safe, and no error if it was not attached."""
        with self._observers_lock:
            if observer in self._observers:
                self._observers = tuple(o for o in self._observers if o is not observer)

    def notify(self, reading: Reading) -> None:
        """Call ``update(self, reading)`` on every attached observer, in this thread."""
        for observer in self._observers:
            observer.update(self, reading)

    # -- reading and setting --------------------------------------------------------------

    def read(self) -> Reading:
        """Return the current reading, a ``(timestamp, status, value)`` :class:`Reading`."""
        return self._current_reading

    def value(self) -> Any:
        """Return the current value."""
        return self._current_reading.value

    def status(self) -> int:
        """Return the current status, a key of ``Sensor.STATUSES``."""
        return self._current_reading.status

    def set(self, timestamp: builtins.float, status: int, value: Any) -> None:
        """Store a new reading without checking it, then notify observers.

        Parameters
        ----------
        timestamp
            Seconds since the Unix epoch at which the value was determined.
        status
            A status constant.
        value
            A value suited to the sensor type; use :meth:`set_value` to have it checked.
        """
        # tuple.__new__ skips NamedTuple's Python-level __new__: set() is a hot path.
        reading: Reading = _tuple_new(Reading, (timestamp, status, value))
        self._current_reading = reading
        for observer in self._observers:
            observer.update(self, reading)

    def _range_status(self, value: Any, status: int) -> int:
        """The status a ``NOMINAL`` reading of `value` should carry, by the sensor's ranges.

        Spec 5.1 section 7.2: values in ``[nominal-min, nominal-max]`` are nominal; outside
        it a reading is ``WARN`` (inside ``[warn-min, warn-max]`` when given) or ``ERROR``
        (outside the warn range). NaN lies in no range. Other statuses are kept as given.
        """
        if status != self.NOMINAL or self._min is None or self._min <= value <= self._max:
            return status
        if self._warn_min is not None and not self._warn_min <= value <= self._warn_max:
            return self.ERROR
        return self.WARN

    def _not_discrete(self, value: Any) -> str:
        """katcp-python 0.9.3's text for a value not in a discrete sensor's values."""
        return f"Discrete value '{value}' is not one of {list(self.params)}."

    def _check_value(self, value: Any) -> Any:
        value = self._check(value)
        if self._discrete_values is not None:
            text = value.decode("utf-8") if isinstance(value, bytes) else value
            if text not in self._discrete_values:
                raise ValueError(self._not_discrete(value))
            value = text
        return value

    def set_value(
        self,
        value: Any,
        status: int = SensorConstants.NOMINAL,
        timestamp: builtins.float | None = None,
        major: int = DEFAULT_KATCP_MAJOR,
    ) -> None:
        """Check a value, then set it with `status` and `timestamp`.

        Parameters
        ----------
        value
            A value of the sensor's type; discrete values must be one of the params. Numbers
            outside the sensor's range are accepted (spec 5.1 section 7.2: the range is what
            is expected, not a limit).
        status
            A status constant; ``NOMINAL`` by default. A ``NOMINAL`` number outside the
            nominal range is stored as ``WARN``, or as ``ERROR`` when it is also outside the
            warn range, so the status says what is wrong; other statuses are kept.
        timestamp
            Seconds since the Unix epoch; the current time if None.
        major
            Accepted for katcp-python compatibility; checks do not depend on it.

        Raises
        ------
        TypeError
            If `value` has the wrong Python type.
        ValueError
            If `value` is not allowed (a discrete value not in the params, a non-finite
            timestamp ...), or `status` is unknown.

        Notes
        -----
        katcp-python 0.9.3 checks no type here (an integer sensor takes ``"x"``, which later
        fails to format) and keeps ``NOMINAL`` for out-of-range values.
        """
        value = self._check_value(value)
        if status not in self.STATUSES:
            raise ValueError(f"unknown sensor status {status!r}")
        status = self._range_status(value, status)
        if timestamp is None:
            timestamp = time.time()
        self.set(timestamp, status, value)

    # -- wire formats ---------------------------------------------------------------------

    def format_value(self, value: Any, major: int = DEFAULT_KATCP_MAJOR) -> bytes:
        """Format one value of this sensor's type as bytes (unescaped)."""
        return self._formatter(value, major)

    def format_reading(
        self, reading: Reading | tuple[builtins.float, int, Any], major: int = DEFAULT_KATCP_MAJOR
    ) -> tuple[bytes, bytes, bytes]:
        """Format a reading of this sensor as ``(timestamp, status, value)`` bytes.

        Parameters
        ----------
        reading
            A reading of this sensor, as returned by :meth:`read`.
        major
            KATCP major version. Before v5, timestamps are in milliseconds and statuses new
            in v5 are sent as their nearest v4 status (see ``STATUSES_RAW_V4``).
        """
        # Not cached here: the server's sampling manager formats each reading once, in its
        # one cache (katcpx._sensor_informs.ReadingFormatter) for every client.
        timestamp, status, value = reading
        statuses = self.STATUSES_RAW if major >= SEC_TS_KATCP_MAJOR else self.STATUSES_RAW_V4
        return (
            format_timestamp(timestamp, major),
            statuses[status],
            self._formatter(value, major),
        )

    def read_formatted(self, major: int = DEFAULT_KATCP_MAJOR) -> tuple[bytes, bytes, bytes]:
        """Read the sensor and format the reading as ``(timestamp, status, value)`` bytes."""
        return self.format_reading(self._current_reading, major)

    def parse_value(self, s_value: bytes, katcp_major: int = DEFAULT_KATCP_MAJOR) -> Any:
        """Parse a formatted value; the exact inverse of formatting it.

        Parameters
        ----------
        s_value
            The (unescaped) bytes.
        katcp_major
            KATCP major version (timestamps are milliseconds before v5).

        Raises
        ------
        KatcpTypeError
            If `s_value` is not bytes (a ``ValueError``).
        ValueError
            If `s_value` is not a valid value for this sensor.
        """
        if not isinstance(s_value, bytes):
            raise KatcpTypeError(f"sensor value must be bytes, not {type_name(s_value)}")
        value = self._parser(s_value, katcp_major)
        if self._discrete_values is not None and value not in self._discrete_values:
            raise ValueError(self._not_discrete(value))
        return value

    def set_formatted(
        self,
        raw_timestamp: bytes,
        raw_status: bytes,
        raw_value: bytes,
        major: int = DEFAULT_KATCP_MAJOR,
    ) -> None:
        """Parse a formatted ``(timestamp, status, value)`` and set it.

        Raises
        ------
        ValueError
            If any part does not parse.
        """
        timestamp = parse_timestamp(raw_timestamp, major)
        try:
            status = self.STATUS_NAMES_RAW[raw_status]
        except KeyError:
            raise ValueError(f"unknown sensor status {show_argument(raw_status)}") from None
        self.set(timestamp, status, self.parse_value(raw_value, major))

    @classmethod
    def parse_type(cls, type_string: str | bytes) -> int:
        """Return the type constant for a KATCP type name such as ``"integer"``.

        Raises
        ------
        KatcpSyntaxError
            For an unknown type name (a ``ValueError``).
        """
        shown = show_argument(type_string)
        if isinstance(type_string, bytes):
            type_string = type_string.decode("ascii", "replace")
        try:
            return cls.SENSOR_TYPE_LOOKUP[type_string]
        except KeyError:
            raise KatcpSyntaxError(f"invalid sensor type {shown}") from None

    @classmethod
    def parse_params(
        cls,
        sensor_type: int,
        formatted_params: Sequence[bytes | str],
        major: int = DEFAULT_KATCP_MAJOR,
    ) -> list[Any]:
        """Parse the params of a ``#sensor-list`` inform into Python values.

        Parameters
        ----------
        sensor_type
            A type constant.
        formatted_params
            The params as bytes (``str`` is taken as its UTF-8, where katcp-python takes it
            for numbers only).
        major
            KATCP major version.

        Returns
        -------
        list
            ``int`` for integer sensors, ``float`` for float, ``str`` for discrete, the
            parsed value for the other types: katcp-python's forms.

        Raises
        ------
        ValueError
            If a param does not parse as the sensor type.
        """
        parser = cls.CODECS[sensor_type][2]
        return [
            parser(p.encode("utf-8") if isinstance(p, str) else p, major) for p in formatted_params
        ]
