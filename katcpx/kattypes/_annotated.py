"""Annotation-driven request handlers: ``async def request_x(self, req, a: int)``."""

from __future__ import annotations

import enum
import functools
import inspect
import itertools
import types as _pytypes
import typing
from collections.abc import Callable
from typing import Any, Union

from ..errors import KatcpTypeError
from ..flags import DEFAULT_KATCP_MAJOR
from ..message import Message
from ._decorators import is_pending_result, then
from ._packing import Unpacker
from ._special_types import BytesType, EnumType, enum_wire
from ._types import Bool, Float, Int, KatcpType, Str

# ---------------------------------------------------------------------------------------
# Annotation-driven handlers
# ---------------------------------------------------------------------------------------

_UNION_TYPES: tuple[Any, ...] = (Union, _pytypes.UnionType)

_SIMPLE_TYPES: dict[Any, Callable[..., KatcpType]] = {
    int: Int,
    float: Float,
    bool: Bool,
    str: Str,
    bytes: BytesType,
}


def _with_options(kattype: KatcpType, optional: bool = False, multiple: bool = False) -> KatcpType:
    """`kattype`, or a copy that is also optional/multiple (``Optional[...]``, ``*args``)."""
    return kattype.with_options(optional, multiple)


def _kattype_for(annotation: Any, where: str, **kwargs: Any) -> KatcpType:
    """Map a parameter annotation to a kattype instance (at wrap time, never per call)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        for extra in typing.get_args(annotation)[1:]:
            if isinstance(extra, KatcpType):
                return _with_options(extra, **kwargs)
        return _kattype_for(typing.get_args(annotation)[0], where, **kwargs)
    if origin in _UNION_TYPES:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            kwargs["optional"] = True
            return _kattype_for(members[0], where, **kwargs)
        raise TypeError(f"{where}: unions other than Optional[X] are not supported")
    if isinstance(annotation, KatcpType):
        return _with_options(annotation, **kwargs)
    factory = _SIMPLE_TYPES.get(annotation)
    if factory is not None:
        return factory(**kwargs)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return EnumType(annotation, **kwargs)
    if annotation is inspect.Parameter.empty:
        raise TypeError(f"{where} has no annotation")
    raise TypeError(f"{where}: unsupported annotation {annotation!r}")


def _is_message_annotation(annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty or annotation is Message:
        return True
    return isinstance(annotation, str) and annotation.rsplit(".", 1)[-1] == "Message"


def _resolved_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable string annotations: fall back to the raw ones
        return dict(getattr(func, "__annotations__", {}))


class _ReplyFormatter:
    """Turns a modern handler's return value into the reply (decided once per handler)."""

    __slots__ = ("types", "single", "variadic", "major")

    def __init__(self, annotation: Any, where: str, major: int) -> None:
        self.major = major
        self.types: list[KatcpType] | None = None  # None: format values by their own type
        self.single = False
        self.variadic = False
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            self.types = [_kattype_for(annotation, where)]
            self.single = True
            return
        if origin in _UNION_TYPES:  # Optional[X]: None is handled per call
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                origin = typing.get_origin(annotation)
        if annotation in (inspect.Signature.empty, None, type(None), Any, Message):
            return
        if origin is tuple:
            args = typing.get_args(annotation)
            if len(args) == 2 and args[1] is Ellipsis:
                self.types = [_kattype_for(args[0], where, multiple=True)]
                self.variadic = True
            elif args != ((),):
                self.types = [_kattype_for(a, where) for a in args]
            else:
                self.types = []
            return
        if isinstance(annotation, str) or origin is not None:
            return  # unresolved or generic: leave to the values' own types
        try:
            self.types = [_kattype_for(annotation, where)]
            self.single = True
        except TypeError:
            self.types = None

    def __call__(self, msg: Message, result: Any) -> Message:
        if result is None:
            return Message.from_parts(Message.REPLY, msg.name, [b"ok"], msg.mid)
        if isinstance(result, Message):
            return result
        types = self.types
        if types is None:
            values = result if type(result) is tuple else (result,)
            return Message.reply(
                msg.name,
                "ok",
                *(enum_wire(v) if isinstance(v, enum.Enum) else v for v in values),
                mid=msg.mid,
            )
        values = (result,) if self.single or type(result) is not tuple else result
        if self.variadic:  # tuple[X, ...], possibly empty
            pairs = zip(itertools.repeat(types[0]), values)
        elif len(values) == len(types):
            pairs = zip(types, values, strict=True)
        else:
            raise KatcpTypeError(
                f"?{msg.name} handler returned {len(values)} values for "
                f"its {len(types)} annotated reply values"
            )
        major = self.major
        # None in an Optional[X] slot is an empty argument (katcp-python's pack refuses it).
        packed = [b"" if v is None and t.optional else t.pack(v, major=major) for t, v in pairs]
        return Message.from_parts(Message.REPLY, msg.name, [b"ok", *packed], msg.mid)


def prepare_request_handler(
    func: Callable[..., Any], major: int = DEFAULT_KATCP_MAJOR
) -> Callable[..., Any]:
    """Make a ``(self, req, msg)`` request handler out of `func` (called once per handler).

    Returns `func` unchanged when it already is one: three parameters where ``msg`` is
    unannotated or annotated :class:`~katcpx.message.Message`, or decorated with
    :func:`request`. Otherwise `func`'s annotations drive argument parsing and reply
    formatting::

        async def request_foo(self, req, a: int, b: float = 2.0, *rest: str) -> tuple[int, str]:
            ...

    Parameters map as ``int`` → :class:`Int`, ``float`` → :class:`Float`, ``bool`` →
    :class:`Bool`, ``str`` → :class:`Str`, ``bytes`` → the raw argument, an
    :class:`enum.Enum` subclass → a discrete value (member name lower-cased with ``_`` as
    ``-``, or the member's ``katcp_value``, matched ignoring case), ``Optional[X]`` → X or
    None when absent, and ``Annotated[X, kattype]`` or a kattype instance → that kattype.
    A ``*rest`` parameter takes all remaining arguments; a Python default is used when an
    argument is absent. A parameter right after ``req`` annotated ``Message`` receives the
    request message.

    The handler's return value becomes the reply: None → ``!foo ok``; a tuple →
    ``!foo ok <values>``; any other value → ``!foo ok <value>``; a :class:`Message` is
    returned as is. Values are packed by the return annotation (``tuple[int, str]``,
    ``tuple[float, ...]``, ``int``, ...), or formatted by their own type when there is none.
    To fail, raise :class:`~katcpx.errors.FailReply`.

    Parameters
    ----------
    func
        The handler, an ``async def`` or plain function.
    major
        KATCP major version used to unpack and pack (timestamps).

    Returns
    -------
    callable
        `func`, or ``handler(self, req, msg)`` (``async def`` when `func` is) returning the
        reply message. Attributes set on `func` by the other decorators are kept.

    Raises
    ------
    TypeError
        If a parameter has no or an unsupported annotation, or is keyword-only.

    Notes
    -----
    Bad or missing arguments raise :class:`~katcpx.errors.FailReply` from the returned
    handler (when it is called, or awaited for ``async def``), naming the parameter:
    ``Error in parameter 2 (gain): could not parse 'x' as float``.
    """
    if getattr(func, "_request_decorated", False):
        return func
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    where_base = getattr(func, "__qualname__", repr(func))
    if (
        len(params) == 3
        and params[2].kind in (params[2].POSITIONAL_ONLY, params[2].POSITIONAL_OR_KEYWORD)
        and _is_message_annotation(params[2].annotation)
    ):
        return func
    if len(params) < 2:
        raise TypeError(f"{where_base}: a request handler takes (self, req, ...)")
    hints = _resolved_hints(func)
    rest = params[2:]
    include_msg = False
    if rest and rest[0].kind is not rest[0].VAR_POSITIONAL:
        first_hint = hints.get(rest[0].name, rest[0].annotation)
        if first_hint is Message:
            include_msg = True
            rest = rest[1:]

    kattypes: list[KatcpType] = []
    names: list[str] = []
    python_defaults_from: int | None = None
    for i, p in enumerate(rest):
        where = f"parameter '{p.name}' of {where_base}"
        annotation = hints.get(p.name, p.annotation)
        if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD):
            raise TypeError(f"{where}: keyword-only parameters cannot come from a request")
        if p.kind is p.VAR_POSITIONAL:
            kattypes.append(_kattype_for(annotation, where, multiple=True))
            if python_defaults_from is None:  # no arguments for *rest is fine
                python_defaults_from = i
        else:
            kattypes.append(_kattype_for(annotation, where))
            if p.default is not p.empty and python_defaults_from is None:
                python_defaults_from = i
        names.append(p.name)
    unpack = Unpacker(kattypes, names, major, python_defaults_from)
    formatter = _ReplyFormatter(hints.get("return", sig.return_annotation), where_base, major)

    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(func):

        async def wrapper(self: Any, req: Any, msg: Message) -> Message:
            args = unpack(msg.arguments)
            if include_msg:
                result = await func(self, req, msg, *args)
            else:
                result = await func(self, req, *args)
            return formatter(msg, result)

    else:

        def wrapper(self: Any, req: Any, msg: Message) -> Any:
            args = unpack(msg.arguments)
            if include_msg:
                result = func(self, req, msg, *args)
            else:
                result = func(self, req, *args)
            if type(result) is not tuple and is_pending_result(result):
                return then(result, lambda value: formatter(msg, value))
            return formatter(msg, result)

    functools.update_wrapper(wrapper, func)
    setattr(wrapper, "_request_decorated", True)  # noqa: B010 (wrapper's type is a Union)
    return wrapper
