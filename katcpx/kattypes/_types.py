"""KATCP types: pack Python values into message arguments and unpack them (no I/O)."""

from __future__ import annotations

import copy
import numbers
import re
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from .._shown import printable
from ..codec import format_float
from ..errors import KatcpTypeError, KatcpValueTypeError
from ..flags import DEFAULT_KATCP_MAJOR

__all__ = [
    "HandlerT",
    "FLOAT_RE",
    "show_value",
    "show_raw",
    "KatcpType",
    "Int",
    "Float",
    "Bool",
    "Str",
    "Discrete",
    "DiscreteMulti",
    "Lru",
]

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])

# C99 strtod's decimal forms (the spec excludes hex floats and leading white space); Python's
# float() alone would also accept white space and digit-group underscores.
FLOAT_RE = re.compile(
    rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)\Z", re.IGNORECASE
)
_PLAIN_NUMBERS = (int, float)
_INT_RE = re.compile(rb"[+-]?\d+\Z")


def show_value(value: Any) -> str:
    """Render a raw argument or value for an error message (no ``b''`` noise; what cannot be
    printed escaped, see :func:`katcpx._shown.printable`)."""
    if isinstance(value, (bytes, str)):
        return printable(value)
    return str(value)


def show_raw(value: Any) -> str:
    """Render a raw argument as katcp-python 0.9.3's error texts do (``b'x'`` for bytes)."""
    return repr(value) if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------


class KatcpType:
    """Base class of the KATCP types.

    Subclasses set :attr:`name` and implement :meth:`encode` and :meth:`decode`, and
    :meth:`check` when values have constraints.

    Parameters
    ----------
    default
        The value :meth:`unpack` returns (and :meth:`pack` sends) when no value is given.
    optional
        Whether a missing value is allowed (it unpacks to `default`, which may be None).
    multiple
        Whether the type absorbs all remaining arguments; only the last type of a
        request may set it.
    """

    name: ClassVar[str] = "unknown"

    def __init__(self, default: Any = None, optional: bool = False, multiple: bool = False):
        self._default = default
        #: Whether a missing value is allowed.
        self.optional = optional
        #: Whether the value takes every remaining argument (the last parameter only).
        self.multiple = multiple

    # katcp-python 0.9.3's names for the two options, for subclasses that use them.
    @property
    def _optional(self) -> bool:
        return self.optional

    @_optional.setter
    def _optional(self, value: bool) -> None:
        self.optional = value

    @property
    def _multiple(self) -> bool:
        return self.multiple

    @_multiple.setter
    def _multiple(self, value: bool) -> None:
        self.multiple = value

    def with_options(self, optional: bool = False, multiple: bool = False) -> KatcpType:
        """This type, or a copy that is also optional and/or multiple."""
        if (optional and not self.optional) or (multiple and not self.multiple):
            other = copy.copy(self)
            other.optional = self.optional or optional
            other.multiple = self.multiple or multiple
            return other
        return self

    def get_default(self) -> Any:
        """Return the default value.

        Raises
        ------
        KatcpTypeError
            If there is no default and the value is not optional.
        """
        if self._default is None and not self.optional:
            raise KatcpTypeError("No value or default given")  # katcp-python 0.9.3's text
        return self._default

    def check(self, value: Any, major: int) -> None:
        """Raise :class:`KatcpTypeError` if `value` is not valid under KATCP `major`."""

    def encode(self, value: Any, major: int) -> bytes:
        """Format a (checked) value as an unescaped argument."""
        raise NotImplementedError

    def decode(self, value: bytes, major: int) -> Any:
        """Parse an unescaped argument into a value (not yet checked)."""
        raise NotImplementedError

    def pack(self, value: Any, nocheck: bool = False, major: int = DEFAULT_KATCP_MAJOR) -> bytes:
        """Return `value` formatted as an unescaped KATCP argument.

        Parameters
        ----------
        value
            The value; None packs the default.
        nocheck
            Skip :meth:`check`.
        major
            KATCP major version that decides the wire format (timestamps).

        Raises
        ------
        KatcpTypeError
            If the value is None without a default, fails the check or cannot be encoded.
        """
        if value is None:
            value = self.get_default()
            if value is None:
                raise KatcpTypeError("Cannot pack a None value.")  # katcp-python's text
        if not nocheck:
            self.check(value, major)
        return self.encode(value, major)

    def unpack(self, packed_value: bytes | None, major: int = DEFAULT_KATCP_MAJOR) -> Any:
        """Parse an unescaped KATCP argument into a value and check it.

        Parameters
        ----------
        packed_value
            The argument; None (argument absent) gives the default.
        major
            KATCP major version that decides the wire format (timestamps).

        Raises
        ------
        KatcpTypeError
            If the argument cannot be parsed, fails the check, or is absent without a
            default.
        """
        if packed_value is None:
            value = self.get_default()
        else:
            value = self.decode(packed_value, major)
        if value is not None:
            self.check(value, major)
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _Bounded(KatcpType):
    """A number type with optional inclusive bounds, checked by :meth:`check`."""

    def __init__(self, min: Any = None, max: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._min = min
        self._max = max

    def _show_number(self, value: Any) -> str:
        return str(value)

    def check(self, value: Any, major: int) -> None:
        if self._min is None and self._max is None:
            return
        # A variable rather than an if-isinstance, so mypy does not narrow value to Real.
        real = type(value) in _PLAIN_NUMBERS or isinstance(value, numbers.Real)
        if not real:
            return  # encode() rejects it with a clearer message
        show = self._show_number
        if self._min is not None and value < self._min:
            raise KatcpTypeError(  # katcp-python 0.9.3's texts, compared by its users' tests
                f"{self.name.capitalize()} {show(value)} is lower than minimum {show(self._min)}."
            )
        if self._max is not None and value > self._max:
            raise KatcpTypeError(
                f"{self.name.capitalize()} {show(value)} is higher than maximum {show(self._max)}."
            )


class Int(_Bounded):
    """The KATCP integer type.

    Parameters
    ----------
    min, max
        Inclusive bounds, not checked when None.
    **kwargs
        ``default``, ``optional``, ``multiple`` as for :class:`KatcpType`.

    Notes
    -----
    Packing a float is allowed only when it is integral (katcp-python truncated it silently).
    Unpacking follows the spec's ``printf("%d")`` form: an optional sign and decimal digits.
    """

    name = "integer"

    def encode(self, value: Any, major: int) -> bytes:
        if type(value) is int:  # the common case, without the slow ABC checks below
            return b"%d" % value
        try:
            if isinstance(value, numbers.Integral):
                return b"%d" % int(value)
            if isinstance(value, numbers.Real) and float(value).is_integer():
                return b"%d" % int(float(value))
        except (TypeError, ValueError, OverflowError):
            pass
        if not isinstance(value, numbers.Real):  # the TypeError text katcp-python's %d gives
            raise KatcpValueTypeError(
                f"%d format: a real number is required, not {type(value).__name__}"
            )
        raise KatcpTypeError(f"could not encode {value!r} as integer")

    def decode(self, value: bytes, major: int) -> int:
        if not _INT_RE.match(value):
            raise KatcpTypeError(f"Could not parse value '{show_raw(value)}' as integer.")
        return int(value)


class Float(_Bounded):
    """The KATCP float type.

    Parameters
    ----------
    min, max
        Inclusive bounds, not checked when None.
    **kwargs
        ``default``, ``optional``, ``multiple`` as for :class:`KatcpType`.

    Notes
    -----
    Floats pack as ``repr`` (round-trips exactly). Unpacking accepts C99 ``strtod``'s
    decimal forms (including ``inf`` and ``nan``) but, as the spec requires, no hex floats,
    white space or digit-group underscores.
    """

    name = "float"

    def encode(self, value: Any, major: int) -> bytes:
        if type(value) is float or isinstance(value, numbers.Real):
            return format_float(value)
        raise KatcpValueTypeError(f"Could not encode value '{value!r}' as float.")

    def decode(self, value: bytes, major: int) -> float:
        if not FLOAT_RE.match(value):
            raise KatcpTypeError(f"Could not parse value '{show_raw(value)}' as float.")
        return float(value)

    def _show_number(self, value: Any) -> str:
        return f"{value:g}"


class Bool(KatcpType):
    """The KATCP boolean type: ``1`` is True and ``0`` is False."""

    name = "boolean"

    def encode(self, value: Any, major: int) -> bytes:
        return b"1" if value else b"0"

    def decode(self, value: bytes, major: int) -> bool:
        if value == b"1":
            return True
        if value == b"0":
            return False
        raise KatcpTypeError(f"Boolean value must be b'0' or b'1' but is '{show_raw(value)}'.")


class Str(KatcpType):
    """The KATCP string type.

    Unpacked values are ``str`` (the argument decoded as UTF-8); packing accepts ``bytes``
    (sent unchanged), ``str`` (encoded as UTF-8) and any other object (``str(value)``).
    """

    name = "string"

    def encode(self, value: Any, major: int) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
        return str(value).encode("utf-8")

    def decode(self, value: bytes, major: int) -> Any:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise KatcpTypeError(f"could not decode '{show_value(value)}' as UTF-8") from None


class Discrete(Str):
    """The KATCP discrete type: a string from a fixed set.

    Parameters
    ----------
    values
        The allowed values.
    case_insensitive
        Match values ignoring case. The unpacked value keeps the case it was sent with.
    **kwargs
        ``default``, ``optional``, ``multiple`` as for :class:`KatcpType`.
    """

    name = "discrete"

    def __init__(self, values: Iterable[str], case_insensitive: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self._case_insensitive = case_insensitive
        self._values = list(values)  # a list keeps the order for messages
        self._valid_values = set(self._values)
        self._valid_values_lower = {v.lower() for v in self._values}

    def _check_one(self, value: Any) -> None:
        if not isinstance(value, (str, bytes)):
            raise KatcpValueTypeError(
                f"discrete value {value!r} is not a string (one of {self._values})"
            )
        if isinstance(value, bytes):
            value = value.decode("utf-8", "backslashreplace")
        if self._case_insensitive:
            ok = isinstance(value, str) and value.lower() in self._valid_values_lower
            caseflag = " (case-insensitive)"
        else:
            ok = value in self._valid_values
            caseflag = ""
        if not ok:
            raise KatcpTypeError(
                f"Discrete value '{show_value(value)}' is not one of {self._values}{caseflag}."
            )

    def check(self, value: Any, major: int) -> None:
        self._check_one(value)


class DiscreteMulti(Discrete):
    """A discrete type whose value is a list of allowed values, packed joined by `separator`.

    Parameters
    ----------
    values
        The allowed values.
    all_keyword
        Argument that stands for every allowed value (``"all"``); empty or None disables it.
    separator
        Separator between values in the packed argument.
    **kwargs
        ``case_insensitive``, ``default``, ``optional``, ``multiple``.

    Notes
    -----
    Unpacked lists are sorted case-insensitively, as are packed ones.
    """

    name = "discretemulti"

    def __init__(
        self,
        values: Iterable[str],
        all_keyword: str | None = "all",
        separator: str = ",",
        **kwargs: Any,
    ) -> None:
        self.all_keyword = all_keyword
        self.separator = separator
        super().__init__(values, **kwargs)

    def encode(self, value: Any, major: int) -> bytes:
        items = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value]
        return self.separator.join(sorted(items, key=str.lower)).encode("utf-8")

    def decode(self, value: bytes, major: int) -> list[str]:
        joined = super().decode(value, major)
        if self.all_keyword and joined == self.all_keyword:
            return sorted(self._values, key=str.lower)
        return sorted((v.strip() for v in joined.split(self.separator)), key=str.lower)

    def check(self, value: Any, major: int) -> None:
        if isinstance(value, (str, bytes)):
            raise KatcpTypeError(f"discretemulti value must be a list of values, not {value!r}")
        try:
            values = list(value)
        except TypeError:
            raise KatcpValueTypeError(
                f"discretemulti value must be a list of values, not {value!r}"
            ) from None
        for v in values:
            self._check_one(v)


class Lru(KatcpType):
    """The (deprecated) KATCP lru type: ``LRU_NOMINAL`` ↔ ``nominal``, ``LRU_ERROR`` ↔ ``error``."""

    name = "lru"

    LRU_NOMINAL: ClassVar[int] = 0
    LRU_ERROR: ClassVar[int] = 1
    #: Wire value of each LRU constant.
    LRU_VALUES: ClassVar[dict[int, bytes]] = {0: b"nominal", 1: b"error"}
    #: LRU constant of each wire value.
    LRU_CONSTANTS: ClassVar[dict[bytes, int]] = {b"nominal": 0, b"error": 1}

    def encode(self, value: Any, major: int) -> bytes:
        try:
            return Lru.LRU_VALUES[value]
        except KeyError:
            raise KatcpTypeError("Lru value must be LRU_NOMINAL or LRU_ERROR.") from None
        except TypeError:  # unhashable
            raise KatcpValueTypeError("Lru value must be LRU_NOMINAL or LRU_ERROR.") from None

    def decode(self, value: bytes, major: int) -> int:
        try:
            return Lru.LRU_CONSTANTS[value]
        except KeyError:
            raise KatcpTypeError("Lru value must be 'nominal' or 'error'.") from None
