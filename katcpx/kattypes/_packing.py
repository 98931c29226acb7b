"""Packing and unpacking whole argument lists, with errors that name the parameter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import FailReply, KatcpTypeError
from ._types import KatcpType

# ---------------------------------------------------------------------------------------
# Packing and unpacking argument lists
# ---------------------------------------------------------------------------------------


class Parameter:
    """A kattype at a position of a request, for error messages that name the parameter.

    Parameters
    ----------
    position
        1-based position of the parameter in the message.
    name
        Parameter name (from the handler's signature), or ``""``.
    kattype
        The parameter's type.
    major
        KATCP major version used to unpack.
    """

    __slots__ = ("position", "name", "kattype", "major")

    def __init__(self, position: int, name: str, kattype: KatcpType, major: int) -> None:
        self.position = position
        self.name = name
        self.kattype = kattype
        self.major = major

    def pack(self, value: Any) -> bytes:
        """Pack `value` with the parameter's type."""
        return self.kattype.pack(value, major=self.major)

    def unpack(self, value: bytes | None) -> Any:
        """Unpack `value` with the parameter's type.

        Raises
        ------
        FailReply
            ``Error in parameter <position> (<name>): <problem>``.
        """
        try:
            return self.kattype.unpack(value, self.major)
        except ValueError as e:  # KatcpTypeError, and ValueErrors of user-defined types
            raise FailReply(f"Error in parameter {self.position} ({self.name}): {e}") from None


def check_multiple_last(types: Sequence[KatcpType]) -> None:
    for type_ in types[:-1]:
        if type_.multiple:
            raise TypeError("Only the last parameter type can accept multiple arguments.")


class Unpacker:
    """Unpacks message arguments by a fixed list of parameters (built once per handler).

    Parameters
    ----------
    types
        Types of the parameters, in order; only the last may be ``multiple``.
    argnames
        Their names.
    major
        KATCP major version.
    python_defaults_from
        Index of the first parameter whose handler argument has a Python default; missing
        arguments from there on are left out of the call so Python fills them in.
    """

    __slots__ = ("params", "nparams", "multiple", "python_defaults_from")

    def __init__(
        self,
        types: Sequence[KatcpType],
        argnames: Sequence[str],
        major: int,
        python_defaults_from: int | None = None,
    ) -> None:
        check_multiple_last(types)
        self.params = [
            Parameter(i + 1, argnames[i] if i < len(argnames) else "", t, major)
            for i, t in enumerate(types)
        ]
        self.nparams = len(self.params)
        self.multiple = bool(types) and types[-1].multiple
        self.python_defaults_from = (
            self.nparams if python_defaults_from is None else python_defaults_from
        )

    def __call__(self, args: Sequence[bytes]) -> list[Any]:
        nargs = len(args)
        params = self.params
        if nargs <= self.nparams:
            values = [params[i].unpack(args[i]) for i in range(nargs)]
        elif not self.multiple:
            raise FailReply("Too many parameters given.")  # katcp-python 0.9.3's text
        else:
            values = [p.unpack(a) for p, a in zip(params, args, strict=False)]
            # The rest belong to the last (multiple) parameter. No Parameter per position:
            # a huge request must not grow anything that outlives it.
            last = params[-1]
            kattype, major = last.kattype, last.major
            try:
                for i in range(self.nparams, nargs):
                    values.append(kattype.unpack(args[i], major))
            except ValueError as e:
                raise FailReply(
                    f"Error in parameter {len(values) + 1} ({last.name}): {e}"
                ) from None
        # Absent arguments get their type's default (an error without one), until the
        # handler's own Python defaults (or its *args) take over.
        for i in range(nargs, self.python_defaults_from):
            values.append(params[i].unpack(None))
        return values


def unpack_types(
    types: Sequence[KatcpType], args: Sequence[bytes], argnames: Sequence[str], major: int
) -> list[Any]:
    """Unpack message arguments according to a list of types.

    Parameters
    ----------
    types
        The types of the arguments, in order; only the last may be ``multiple``.
    args
        The (unescaped) arguments.
    argnames
        Parameter names, for error messages.
    major
        KATCP major version.

    Returns
    -------
    list
        The unpacked values. Arguments that are absent get their type's default.

    Raises
    ------
    FailReply
        A bad argument (naming it), too many arguments, or an absent one without default.
    """
    return Unpacker(types, argnames, major)(args)


def pack_types(types: Sequence[KatcpType], args: Sequence[Any], major: int) -> list[bytes]:
    """Pack values according to a list of types.

    Parameters
    ----------
    types
        The types, in order; a ``multiple`` last type packs all remaining values.
    args
        The values; missing ones pack their type's default.
    major
        KATCP major version.

    Returns
    -------
    list of bytes
        The packed (unescaped) arguments.

    Raises
    ------
    KatcpTypeError
        Too many values, or a value its type cannot pack.
    """
    ntypes = len(types)
    nargs = len(args)
    multiple = ntypes > 0 and types[-1].multiple
    if nargs > ntypes and not multiple:
        raise KatcpTypeError("Too many arguments to pack.")  # katcp-python 0.9.3's text
    packed = [types[i].pack(args[i] if i < nargs else None, major=major) for i in range(ntypes)]
    if nargs > ntypes:
        last = types[-1]
        packed.extend(last.pack(arg, major=major) for arg in args[ntypes:])
    return packed
