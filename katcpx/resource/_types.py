"""Value types, exceptions and small helpers of the resource layer (katcp-python's names)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from .._compat import WaitTimeout
from ..message import Message
from ..sensor import Sensor

__all__ = [
    "AttrDict",
    "KATCPReply",
    "KATCPResourceError",
    "KATCPResourceInactive",
    "KATCPSensorError",
    "KATCPSensorReading",
    "SensorResultTuple",
    "SensorWaitTimeout",
    "StrategyParams",
    "escape_name",
    "normalize_strategy_parameters",
]

#: A sampling strategy as a tuple of strings, e.g. ``("event-rate", "1.0", "5.0")``.
StrategyParams = tuple[str, ...]


class KATCPResourceError(Exception):
    """Error raised for resource-related errors."""


class KATCPResourceInactive(KATCPResourceError):
    """Raised when a request is made to an inactive resource."""


class KATCPSensorError(KATCPResourceError):
    """Raised if a problem occurred dealing with a KATCPSensor operation."""


class SensorWaitTimeout(WaitTimeout):
    """A sensor condition was still not satisfied when the wait timed out.

    It is both a builtin ``TimeoutError`` and an ``asyncio.TimeoutError`` on every supported
    Python version.
    """


def escape_name(name: str) -> str:
    """Escape a sensor or request name to a valid Python identifier (``.``/``-`` → ``_``)."""
    return name.replace(".", "_").replace("-", "_")


def _fixup_number(val: Any) -> str:
    if isinstance(val, bytes):
        val = val.decode("utf-8")
    try:
        return str(float(val))
    except (TypeError, ValueError):
        return str(val)


def normalize_strategy_parameters(params: str | bytes | Iterable[Any]) -> StrategyParams:
    """Normalize strategy parameters to a tuple of strings.

    Parameters
    ----------
    params
        The strategy name followed by its parameters, either space-separated in one string
        or as a sequence of strings / numbers.

    Returns
    -------
    tuple of str
        Numbers are written as floats (``"1"`` → ``"1.0"``), as katcp-python does, so equal
        strategies compare equal.
    """
    if isinstance(params, bytes):
        params = params.decode("utf-8")
    if isinstance(params, str):
        params = params.split()
    return tuple(_fixup_number(p) for p in params)


class SensorResultTuple(NamedTuple):
    """Per-sensor result of ``list_sensors()``.

    Attributes
    ----------
    object
        The :class:`~katcpx.resource.KATCPSensor`.
    name
        KATCP (unescaped) name of the sensor; prefixed with its resource name in a container.
    python_identifier
        Python-identifier name of the sensor.
    description, type, units
        As announced by the server.
    reading
        Most recently received :class:`KATCPSensorReading`.
    """

    object: Any
    name: str
    python_identifier: str
    description: str
    type: str
    units: str
    reading: KATCPSensorReading


class KATCPSensorReading(NamedTuple):
    """Sensor reading as a ``(received_timestamp, timestamp, istatus, value)`` tuple.

    Attributes
    ----------
    received_timestamp
        Time (seconds since the epoch) at which the reading was received.
    timestamp
        Time (seconds since the epoch) at which the value was determined.
    istatus
        Status constant of :class:`katcpx.Sensor` (an int); :attr:`status` is its name.
    value
        The value, of a Python type matching the sensor type.
    """

    received_timestamp: float
    timestamp: float
    istatus: int
    value: Any

    @property
    def status(self) -> str:
        """The status as a string, e.g. ``'nominal'``."""
        try:
            return Sensor.STATUSES[int(self.istatus)]
        except (TypeError, ValueError, KeyError):
            return "unknown"


_TYPE_SYMBOLS = {Message.REQUEST: "?", Message.REPLY: "!", Message.INFORM: "#"}


class KATCPReply(NamedTuple):
    """Reply and informs of a KATCP request; truthy if the request succeeded.

    It unpacks like a plain ``(reply, informs)`` tuple.

    Attributes
    ----------
    reply
        The reply message.
    informs
        The inform messages received for the request.
    """

    reply: Message
    informs: list[Message]

    def __repr__(self) -> str:
        """Human-readable lines, reply first, e.g. ``!watchdog ok``."""
        return "\n".join(
            "{}{} {}".format(
                _TYPE_SYMBOLS.get(m.mtype, "?"),
                m.name,
                " ".join(a.decode("utf-8", "replace") for a in m.arguments),
            ).rstrip()
            for m in self.messages
        )

    def __str__(self) -> str:
        return "\n".join(str(m) for m in self.messages)

    def __bool__(self) -> bool:
        return self.reply.reply_ok()

    @property
    def messages(self) -> list[Message]:
        """All messages of the request, reply first."""
        return [self.reply, *self.informs]

    @property
    def succeeded(self) -> bool:
        """True if the request succeeded (the reply's first argument is ``ok``)."""
        return bool(self)


class AttrDict(dict[str, Any]):
    """A dict whose keys are also attributes (``d.name`` is ``d["name"]``).

    Keys win over dict methods, so a request or sensor named ``update``, ``clear`` or
    ``items`` is reachable as ``d.update``; use ``dict.items(d)`` and friends for the
    methods.
    """

    def __getattribute__(self, name: str) -> Any:
        if name[:1] != "_":
            try:
                return dict.__getitem__(self, name)
            except KeyError:
                pass
        return super().__getattribute__(name)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *dict.keys(self)]


class DefaultAttrDict(defaultdict):
    """A :class:`collections.defaultdict` whose keys are also attributes.

    Missing attributes get the default value, like missing keys (katcp-python's
    ``katcp.core.DefaultAttrDict``).
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value
