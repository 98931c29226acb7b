"""Values on the wire: timestamps and time quantities, numbers, addresses, sensor values.

Timestamps and other time quantities are in seconds from KATCP v5 and in milliseconds
before (spec 5.1 section 1.1, section 7.1 table 9). One rule for every producer (sensors,
kattypes, ``#log``, ``#op-message``, clients): the exact decimal that parses back to the
same float (spec 5.1 section 3 allows any accuracy), never rounded or truncated.
katcp-python rounds to microseconds (README, differences).

Escapes (spec 5.1 section 3.1) are here too: how one value's bytes appear in a line.

Each sensor type has a :class:`ValueCodec` in :data:`VALUE_CODECS`: a checker (validates a
Python value, returns its normal form), a formatter (value to bytes) and a parser (bytes to
value). Formatters do not check: they are the hot path of every ``#sensor-status``.
"""

from __future__ import annotations

import builtins
import ipaddress
import math
import numbers
import operator
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, NamedTuple

from .._shown import show_wire
from ..flags import DEFAULT_KATCP_MAJOR, SEC_TS_KATCP_MAJOR

__all__ = [
    "SPECIAL_BYTES",
    "escape_argument",
    "escape_specials",
    "wire_argument",
    "show_argument",
    "show_wire",
    "FLOAT_TS_KATCP_MAJOR",
    "format_timestamp",
    "parse_timestamp",
    "format_float",
    "parse_float",
    "format_address",
    "parse_address",
    "check_address",
    "check_string",
    "LRU_NOMINAL",
    "LRU_ERROR",
    "LRU_VALUES",
    "LRU_CONSTANTS",
    "ValueCodec",
    "VALUE_CODECS",
    "check_sensor_name",
    "as_text",
    "type_name",
]

#: First KATCP major version that allows a fractional part in (millisecond) timestamps.
FLOAT_TS_KATCP_MAJOR = 4

#: lru sensor values (``Sensor.LRU_NOMINAL`` and ``Sensor.LRU_ERROR``) and their wire forms.
LRU_NOMINAL = 0
LRU_ERROR = 1
LRU_VALUES: dict[int, bytes] = {LRU_NOMINAL: b"nominal", LRU_ERROR: b"error"}
LRU_CONSTANTS: dict[bytes, int] = {v: k for k, v in LRU_VALUES.items()}

# ---------------------------------------------------------------------------------------------
# Escapes (spec 5.1 section 3.1): how one value's bytes appear inside a line
# ---------------------------------------------------------------------------------------------

#: Bytes that may not appear raw inside an argument (the spec's <special> production).
SPECIAL_BYTES: Final = b"\\ \0\n\r\x1b\t"


def escape_argument(arg: bytes) -> bytes:
    """Escape the special bytes of one argument; the empty argument becomes ``\\@``."""
    if not arg:
        return b"\\@"
    return escape_specials(arg)


def escape_specials(data: bytes) -> bytes:
    """Escape every special byte of `data` (one argument, or several joined by \\x01)."""
    # Backslash first, so the backslashes the other escapes add are not doubled. A chain
    # of C-level replaces beats finding out first which specials are present: a replace
    # that finds nothing costs about what a membership test does.
    return (
        data.replace(b"\\", b"\\\\")
        .replace(b" ", b"\\_")
        .replace(b"\n", b"\\n")
        .replace(b"\t", b"\\t")
        .replace(b"\r", b"\\r")
        .replace(b"\0", b"\\0")
        .replace(b"\x1b", b"\\e")
    )


def wire_argument(arg: bytes) -> bytes:
    """Return formatted argument `arg` as it goes on the wire: escaped only if it must be."""
    if arg and len(arg.translate(None, SPECIAL_BYTES)) == len(arg):
        return arg
    return escape_argument(arg)


def show_argument(value: object) -> str:
    """One argument for a message to people (error replies, ``#log``, logs), never a repr.

    ``bytes`` (and ``str``) are shown as text between single quotes, what cannot be printed
    escaped the KATCP way (:func:`katcpx._shown.show_wire`): ``b"a b"`` reads ``'a b'``,
    ``b"\\xff\\x1b"`` reads ``'\\xff\\e'``; numbers as their decimal text; any other
    object, a Python caller's value, as its ``repr``.
    """
    if isinstance(value, (bytes, str)):
        return show_wire(value)
    if isinstance(value, (int, builtins.float)) and not isinstance(value, bool):
        return str(value)
    return repr(value)


# ---------------------------------------------------------------------------------------------
# Timestamps
# ---------------------------------------------------------------------------------------------

# Accepts what strtod reads in decimal form (what peers send), but no spaces or underscores,
# which Python's float() would also take.
_NUMBER_RE = re.compile(rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_FLOAT_RE = re.compile(
    rb"[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|inf|infinity|nan)\Z",
    re.IGNORECASE,
)
_INT_RE = re.compile(rb"[-+]?[0-9]+\Z")


def _decimal_text(x: builtins.float) -> str:
    """Write finite `x` in plain positional notation that reads back as exactly `x`.

    ``repr`` gives the shortest digits that round-trip, but may use an exponent, which the
    spec's ``XXXX.YYYY`` timestamp format does not allow.
    """
    text = repr(x)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text


def format_timestamp(timestamp: builtins.float, major: int = DEFAULT_KATCP_MAJOR) -> bytes:
    """Format a time in seconds as a KATCP timestamp.

    Parameters
    ----------
    timestamp
        Seconds since the Unix epoch.
    major
        KATCP major version: seconds from version 5, milliseconds before.

    Returns
    -------
    bytes
        Positional decimal (``XXXX.YYYY``, spec section 3). The text parses back to exactly
        the same float; for ``major`` 4 it may hold a fraction of a millisecond (allowed
        since v4); before v4 it is rounded to a whole millisecond.

    Raises
    ------
    ValueError
        If `timestamp` is not finite.
    """
    x = builtins.float(timestamp)
    if major >= SEC_TS_KATCP_MAJOR:
        text = repr(x)
        if "e" not in text and "n" not in text:  # fast path; "n" catches inf and nan
            return text.encode("ascii")
    if not math.isfinite(x):
        raise ValueError(f"timestamp must be finite, not {x!r}")
    if major >= SEC_TS_KATCP_MAJOR:
        return _decimal_text(x).encode("ascii")
    if major < FLOAT_TS_KATCP_MAJOR:
        # Before v4 a timestamp is a whole number of milliseconds.
        return b"%d" % round(Decimal(repr(x)).scaleb(3))
    # Shift the shortest round-tripping decimal by three places: exact, no binary rounding.
    return format(Decimal(repr(x)).scaleb(3), "f").encode("ascii")


def parse_timestamp(raw: bytes, major: int = DEFAULT_KATCP_MAJOR) -> builtins.float:
    """Parse a KATCP timestamp into seconds; the inverse of :func:`format_timestamp`.

    Parameters
    ----------
    raw
        The formatted timestamp. Exponent notation is accepted from peers that send it.
    major
        KATCP major version: seconds from version 5, milliseconds before.

    Raises
    ------
    ValueError
        If `raw` is not a finite decimal number.
    """
    if not _NUMBER_RE.match(raw):
        raise ValueError(f"could not parse {show_argument(raw)} as a timestamp")
    if major >= SEC_TS_KATCP_MAJOR:
        return builtins.float(raw)
    return builtins.float(Decimal(raw.decode("ascii")).scaleb(-3))


# ---------------------------------------------------------------------------------------------
# Per-type codecs. A checker validates a Python value and returns its normal form; a formatter
# turns a value into bytes; a parser turns bytes into a value. Formatters do not check: they
# are the hot path of every #sensor-status.
# ---------------------------------------------------------------------------------------------


def type_name(value: object) -> str:
    """The name of `value`'s type, for error messages."""
    return type(value).__name__


def _check_int(value: object) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"integer sensor value must be an int, not {type_name(value)}")
    return operator.index(value)  # numpy ints -> int


def _check_real(value: object) -> Any:
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise TypeError(f"float sensor value must be a real number, not {type_name(value)}")
    try:
        converted = builtins.float(value)  # type: ignore[arg-type]
        # The value set is the value kept (an int stays an int), as in katcp-python 0.9.3;
        # only what float() cannot take is refused. It formats as a float on the wire.
        return value if isinstance(value, numbers.Real) else converted
    except (TypeError, ValueError):
        raise TypeError(
            f"float sensor value must be a real number, not {type_name(value)}"
        ) from None


def _check_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    # numpy.bool_ is neither bool nor int; 0 and 1 are what the wire carries anyway.
    if type(value).__name__ in ("bool_", "bool") or (
        hasattr(value, "__index__") and operator.index(value) in (0, 1)
    ):
        return bool(value)
    raise TypeError(f"boolean sensor value must be a bool, not {type_name(value)} {value!r}")


def _check_lru(value: object) -> int:
    if isinstance(value, bool) or value not in (LRU_NOMINAL, LRU_ERROR):
        raise ValueError(
            f"lru sensor value must be Sensor.LRU_NOMINAL (0) or Sensor.LRU_ERROR (1), "
            f"not {value!r}"
        )
    return operator.index(value)


def check_string(value: object) -> str | bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"string sensor value cannot be encoded as UTF-8: {exc}") from None
        return value
    raise TypeError(f"string sensor value must be str or bytes, not {type_name(value)}")


def _check_timestamp(value: object) -> builtins.float:
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise TypeError(f"timestamp sensor value must be a number, not {type_name(value)}")
    try:
        x = builtins.float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(
            f"timestamp sensor value must be a number, not {type_name(value)}"
        ) from None
    if not math.isfinite(x):
        raise ValueError(f"timestamp sensor value must be finite, not {x!r}")
    return x


_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?\Z")


def _check_host(host: str) -> None:
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from None
    elif not _HOSTNAME_RE.match(host):
        # Spec: dotted-decimal IPv4. Host names are accepted too, as katcp-python does.
        raise ValueError(f"{host!r} is not a valid IPv4 address or host name")


def check_address(value: object) -> tuple[str, int | None]:
    """Check an address value and return it as ``(host, port)``.

    Raises
    ------
    TypeError, ValueError
        If it is not a valid ``(host, port)``.
    """
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"address sensor value must be a (host, port) tuple, not {value!r}")
    host, port = value
    if not isinstance(host, str):
        raise TypeError(f"address host must be a str, not {type_name(host)}")
    _check_host(host)
    if port is not None:
        if isinstance(port, bool) or not hasattr(port, "__index__"):
            raise TypeError(f"address port must be an int or None, not {type_name(port)}")
        port = operator.index(port)
        if not 0 <= port <= 65535:
            raise ValueError(f"address port must be in 0..65535, not {port}")
    return (host, port)


def _format_int(value: Any, major: int) -> bytes:
    return b"%d" % value


def format_float(value: Any, major: int = DEFAULT_KATCP_MAJOR) -> bytes:
    """Format a real number as the shortest decimal that reads back as the same float."""
    # repr is the shortest text that reads back as the same float; strtod reads it too.
    return repr(builtins.float(value)).encode("ascii")


def _format_bool(value: Any, major: int) -> bytes:
    return b"1" if value else b"0"


def _format_lru(value: Any, major: int) -> bytes:
    return LRU_VALUES[value]


def _format_str(value: Any, major: int) -> bytes:
    if isinstance(value, bytes):
        return value
    # surrogateescape gives back the bytes a non-UTF-8 peer sent (see _parse_str).
    return value.encode("utf-8", "surrogateescape")


def format_address(value: Any, major: int = DEFAULT_KATCP_MAJOR) -> bytes:
    """Format ``(host, port)`` as ``host:port`` (``[host]:port`` for IPv6; no port if None)."""
    host, port = value
    if ":" in host:
        host = f"[{host}]"
    if port is None:
        return host.encode("ascii")
    return f"{host}:{port}".encode("ascii")


# The parse errors use katcp-python 0.9.3's texts (its kattypes'), which users' tests compare.


def _parse_int(raw: bytes, major: int) -> int:
    if not _INT_RE.match(raw):
        raise ValueError(f"Could not parse value '{raw!r}' as integer.")
    return int(raw)


def parse_float(raw: bytes, major: int = DEFAULT_KATCP_MAJOR) -> builtins.float:
    """Parse a float as C's strtod reads it (no white space or underscores).

    Raises
    ------
    ValueError
        If `raw` is not a number.
    """
    if not _FLOAT_RE.match(raw):
        raise ValueError(f"Could not parse value '{raw!r}' as float.")
    return builtins.float(raw)


def _parse_bool(raw: bytes, major: int) -> bool:
    if raw == b"1":
        return True
    if raw == b"0":
        return False
    raise ValueError(f"Boolean value must be b'0' or b'1' but is '{raw!r}'.")


def _parse_lru(raw: bytes, major: int) -> int:
    try:
        return LRU_CONSTANTS[raw]
    except KeyError:
        raise ValueError("Lru value must be 'nominal' or 'error'.") from None


def _parse_str(raw: bytes, major: int) -> str:
    # Spec: string sensors may carry non-character data. surrogateescape keeps such bytes
    # recoverable, so formatting the parsed value gives back the original bytes.
    return raw.decode("utf-8", "surrogateescape")


_ADDRESS_V4_RE = re.compile(rb"(?P<host>[^:\[\]]+)(?::(?P<port>[0-9]+))?\Z")
_ADDRESS_V6_RE = re.compile(rb"\[(?P<host>[^\[\]]+)\](?::(?P<port>[0-9]+))?\Z")


def parse_address(raw: bytes, major: int = DEFAULT_KATCP_MAJOR) -> tuple[str, int | None]:
    """Parse ``host[:port]`` or ``[ipv6][:port]`` into ``(host, port)``.

    Raises
    ------
    ValueError
        If `raw` is not an address.
    """
    match = (_ADDRESS_V6_RE if raw.startswith(b"[") else _ADDRESS_V4_RE).match(raw)
    if match is None:
        raise ValueError(f"Could not parse '{raw!r}' as an address.")
    host = match["host"].decode("ascii", "replace")
    port = match["port"]
    return check_address((host, None if port is None else int(port)))


_SENSOR_NAME_RE = re.compile(r"[A-Za-z0-9._-]+\Z")


def as_text(value: str | bytes, what: str) -> str:
    """`value` as str (bytes are decoded as UTF-8); `what` names it in the error.

    Raises
    ------
    TypeError
        If `value` is neither str nor bytes.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type_name(value)}")
    return value


def check_sensor_name(name: str | bytes) -> str:
    """Return `name` as str if spec 5.1 allows it as a sensor name (``a-z A-Z 0-9 . - _``).

    Raises
    ------
    ValueError
        If it is not.
    """
    name = as_text(name, "sensor name")
    if not _SENSOR_NAME_RE.match(name):
        raise ValueError(
            f"invalid sensor name {show_argument(name)}: spec 5.1 allows only letters, digits, "
            "'.', '-' and '_'"
        )
    return name


class ValueCodec(NamedTuple):
    """How one KATCP sensor type's values are checked, formatted and parsed."""

    #: ``check(value) -> value``: validates a Python value and returns its normal form.
    check: Callable[[Any], Any]
    #: ``format(value, major) -> bytes`` (unescaped; no checks).
    format: Callable[[Any, int], bytes]
    #: ``parse(raw, major) -> value``; raises ``ValueError``.
    parse: Callable[[bytes, int], Any]
    #: The type's default value (None for discrete: the first of its values).
    default: Any


#: KATCP type name to its codec (spec 5.1 section 7.3: the sensor types).
VALUE_CODECS: dict[str, ValueCodec] = {
    "integer": ValueCodec(_check_int, _format_int, _parse_int, 0),
    "float": ValueCodec(_check_real, format_float, parse_float, 0.0),
    "boolean": ValueCodec(_check_bool, _format_bool, _parse_bool, False),
    "lru": ValueCodec(_check_lru, _format_lru, _parse_lru, LRU_NOMINAL),
    "discrete": ValueCodec(check_string, _format_str, _parse_str, None),
    "string": ValueCodec(check_string, _format_str, _parse_str, ""),
    "timestamp": ValueCodec(_check_timestamp, format_timestamp, parse_timestamp, 0.0),
    "address": ValueCodec(check_address, format_address, parse_address, ("0.0.0.0", None)),
}
