"""KATCP types with a special wire form: addresses, timestamps, structs, regexes, bytes, enums."""

from __future__ import annotations

import enum
import numbers
import re
import struct
from typing import Any, ClassVar

from ..codec import format_timestamp, parse_timestamp
from ..errors import KatcpTypeError, KatcpValueTypeError
from ._types import FLOAT_RE, KatcpType, Str, show_raw, show_value

__all__ = [
    "Address",
    "Timestamp",
    "TimestampOrNow",
    "StrictTimestamp",
    "Struct",
    "Regex",
    "BytesType",
    "enum_wire",
    "EnumType",
]

_STRICT_TS_RE = re.compile(rb"[+-]?\d+(?:\.\d+)?\Z")


class Address(KatcpType):
    """The KATCP address type: a ``(host, port)`` tuple whose port may be None.

    IPv6 hosts are written in square brackets (``[::1]:80``), as the spec requires.
    """

    name = "address"

    #: Null address, for use as an initial value.
    NULL: ClassVar[tuple[str, int | None]] = ("0.0.0.0", None)

    IPV4_RE: ClassVar[re.Pattern[bytes]] = re.compile(rb"(?P<host>[^:\[\]]*)(:(?P<port>\d+))?\Z")
    IPV6_RE: ClassVar[re.Pattern[bytes]] = re.compile(rb"\[(?P<host>[^\[\]]*)\](:(?P<port>\d+))?\Z")

    def encode(self, value: Any, major: int) -> bytes:
        try:
            host, port = value
            bhost = host if isinstance(host, bytes) else host.encode("ascii")
        except (ValueError, TypeError, AttributeError, UnicodeEncodeError):
            raise KatcpTypeError(f"Could not extract host and port from value {value!r}") from None
        if b":" in bhost:
            bhost = b"[" + bhost + b"]"
        if port is None:
            return bhost
        try:
            return b"%s:%d" % (bhost, port)
        except TypeError:
            raise KatcpValueTypeError(f"could not encode port {port!r} of address") from None

    def decode(self, value: bytes, major: int) -> tuple[str, int | None]:
        regex = self.IPV6_RE if value.startswith(b"[") else self.IPV4_RE
        match = regex.match(value)
        if match is None:
            raise KatcpTypeError(f"Could not parse '{show_raw(value)}' as an address.")
        port = match.group("port")
        try:
            host = match.group("host").decode("ascii")
        except UnicodeDecodeError:
            raise KatcpTypeError(f"Could not parse '{show_raw(value)}' as an address.") from None
        return host, None if port is None else int(port)


class Timestamp(KatcpType):
    """The KATCP timestamp type; values are float seconds since the Unix epoch.

    On the wire, KATCP 5 and later use seconds and earlier versions milliseconds (a whole
    number before KATCP 4), written by :func:`katcpx.codec.format_timestamp`.

    Notes
    -----
    Packing writes the exact decimal that unpacks to the same float, the one timestamp rule
    of every katcpx producer (spec 5.1 section 3: any accuracy); katcp-python 0.9.3 rounds
    to microseconds (``%.6f``) and truncates milliseconds.
    """

    name = "timestamp"

    def encode(self, value: Any, major: int) -> bytes:
        try:  # float()'s own texts, as katcp-python 0.9.3 gives them
            seconds = float(value)
        except TypeError as e:
            raise KatcpValueTypeError(str(e)) from None
        except ValueError as e:
            raise KatcpTypeError(str(e)) from None
        try:
            return format_timestamp(seconds, major)
        except ValueError:
            raise KatcpTypeError(f"could not encode {value!r} as timestamp") from None

    def decode(self, value: bytes, major: int) -> Any:
        if not FLOAT_RE.match(value):
            raise KatcpTypeError(f"Could not parse value '{show_value(value)}' as timestamp.")
        try:
            return parse_timestamp(value, major)
        except ValueError:  # inf or nan, which katcp-python accepts here
            return float(value)


class _Now:
    """Type of :attr:`TimestampOrNow.NOW`."""

    def __repr__(self) -> str:
        return "TimestampOrNow.NOW"


class TimestampOrNow(Timestamp):
    """A :class:`Timestamp`, or ``now`` which unpacks to (and packs from) :attr:`NOW`."""

    name = "timestamp_or_now"

    #: Value standing for the special argument ``now``.
    NOW: ClassVar[Any] = _Now()

    def encode(self, value: Any, major: int) -> bytes:
        if value is self.NOW:
            return b"now"
        return super().encode(value, major)

    def decode(self, value: bytes, major: int) -> Any:
        if value == b"now":
            return self.NOW
        return super().decode(value, major)


class StrictTimestamp(KatcpType):
    """A timestamp that must have the spec's ``XXXX.YYYY`` form and not be negative.

    Values are float seconds. Packing writes the shortest decimal that round-trips, without
    an exponent.

    Notes
    -----
    katcp-python ignores the protocol version for this type; katcpx follows the spec, where
    timestamps before KATCP 5 are in milliseconds (a fractional part is allowed from
    KATCP 4, so milliseconds are packed exactly for major 4 and rounded before that).
    """

    name = "strict_timestamp"

    def encode(self, value: Any, major: int) -> bytes:
        if not isinstance(value, numbers.Real):
            raise KatcpValueTypeError(f"Could not encode value '{value!r}' as strict timestamp.")
        return format_timestamp(float(value), major)

    def decode(self, value: bytes, major: int) -> float:
        if not _STRICT_TS_RE.match(value):
            raise KatcpTypeError(f"Could not parse value '{show_raw(value)}' as strict timestamp.")
        return parse_timestamp(value, major)

    def check(self, value: Any, major: int) -> None:
        try:  # float()'s own texts, as katcp-python 0.9.3 gives them
            f = float(value)
        except TypeError as e:
            raise KatcpValueTypeError(str(e)) from None
        except ValueError as e:
            raise KatcpTypeError(str(e)) from None
        if f < 0:
            raise KatcpTypeError("Strict timestamps may not be negative.")
        if f != f or f in (float("inf"), float("-inf")):
            raise KatcpTypeError("strict timestamps must be finite")


class Struct(KatcpType):
    """Values packed and unpacked with :mod:`struct`; the value is a tuple.

    Parameters
    ----------
    fmt
        The :func:`struct.pack` format.
    **kwargs
        ``default``, ``optional``, ``multiple`` as for :class:`KatcpType`.
    """

    name = "struct"

    def __init__(self, fmt: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fmt = fmt

    def encode(self, value: Any, major: int) -> bytes:
        try:
            return struct.pack(self._fmt, *value)
        except TypeError as e:  # not a sequence
            raise KatcpValueTypeError(
                f"could not pack {value!r} into struct with format {self._fmt}: {e}"
            ) from None
        except struct.error as e:
            raise KatcpTypeError(
                f"Could not pack {value} into struct with format {self._fmt}: {e}"
            ) from None

    def decode(self, value: bytes, major: int) -> tuple[Any, ...]:
        try:
            return struct.unpack(self._fmt, value)
        except struct.error as e:
            raise KatcpTypeError(
                f"Could not unpack {show_raw(value)} from struct with format {self._fmt}: {e}"
            ) from None


class Regex(Str):
    """A string that must match a regular expression (anchored at the start, as ``re.match``).

    Parameters
    ----------
    regex
        Pattern string or compiled pattern.
    **kwargs
        ``default``, ``optional``, ``multiple`` as for :class:`KatcpType`.
    """

    name = "regex"

    _re_flags: ClassVar[list[tuple[str, int]]] = [
        ("I", re.I),
        ("L", re.L),
        ("M", re.M),
        ("S", re.S),
        ("U", re.U),
        ("X", re.X),
    ]

    def __init__(self, regex: str | re.Pattern[str], **kwargs: Any) -> None:
        if isinstance(regex, re.Pattern):
            self._pattern = regex.pattern
            self._compiled = regex
        else:
            self._pattern = regex
            self._compiled = re.compile(regex)
        self._flags = ",".join(n for n, v in self._re_flags if self._compiled.flags & v)
        super().__init__(**kwargs)

    def check(self, value: Any, major: int) -> None:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "backslashreplace")
        if not isinstance(value, str):
            raise KatcpValueTypeError(f"value {value!r} for regex '{self._pattern}' is not a str")
        if not self._compiled.match(value):
            raise KatcpTypeError(
                f"Value '{show_value(value)}' does not match regex '{self._pattern}' "
                f"with flags '{self._flags}'."
            )


class BytesType(KatcpType):
    """Raw argument bytes, unchanged (what a ``bytes`` annotation means)."""

    name = "string"

    def encode(self, value: Any, major: int) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
        raise KatcpValueTypeError(f"could not encode {value!r} as bytes")

    def decode(self, value: bytes, major: int) -> bytes:
        return value


def enum_wire(member: enum.Enum) -> bytes:
    """Wire form of an enum member: its ``katcp_value``, else its lower-cased, dashed name."""
    custom = getattr(member, "katcp_value", None)
    if custom is not None:
        return custom if isinstance(custom, bytes) else str(custom).encode("utf-8")
    return member.name.lower().replace("_", "-").encode("ascii")


class EnumType(KatcpType):
    """An :class:`enum.Enum` subclass as a discrete type (matched ignoring case)."""

    name = "discrete"

    def __init__(self, cls: type[enum.Enum], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cls = cls
        self._lookup = {enum_wire(m).lower(): m for m in cls}

    def encode(self, value: Any, major: int) -> bytes:
        if not isinstance(value, self._cls):
            raise KatcpValueTypeError(f"could not encode {value!r} as {self._cls.__name__}")
        return enum_wire(value)

    def decode(self, value: bytes, major: int) -> enum.Enum:
        try:
            return self._lookup[value.lower()]
        except KeyError:
            allowed = [k.decode("utf-8", "backslashreplace") for k in self._lookup]
            raise KatcpTypeError(
                f"discrete value '{show_value(value)}' is not one of {allowed} (case-insensitive)"
            ) from None
