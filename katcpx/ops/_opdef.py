"""Declaring operations: :class:`OpDef`, made by the ``@task`` and ``@process`` decorators.

An :class:`OpDef` is a class attribute of a device server; :mod:`katcpx.ops._server` turns
each into requests and sensors. This module only describes an operation: its coroutine, kind,
KATCP name and parameters.
"""

from __future__ import annotations

import enum
import inspect
import json
import typing
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, overload

from ..message import Message
from ._session import OpKind

__all__ = ["OpDef", "OpFunc", "jsonable", "outcome", "process", "task", "to_json"]

OpFunc = Callable[..., Coroutine[Any, Any, Any]]
_F = TypeVar("_F", bound=OpFunc)


class OpDef:
    """An operation declared with :func:`task` or :func:`process` (a class attribute).

    Attributes
    ----------
    func
        The ``async def op(self, session, ...)`` coroutine function.
    kind
        :attr:`OpKind.TASK` or :attr:`OpKind.PROCESS`.
    name
        KATCP name (the function name with ``_`` as ``-``): requests are ``<name>-start``...
    signature
        The operation's parameters (without ``self`` and ``session``).
    stop_timeout
        Processes only: seconds after a stop request before the process is cancelled
        (None: wait for it to return, however long it takes).
    """

    def __init__(
        self,
        func: OpFunc,
        kind: OpKind,
        name: str | None = None,
        stop_timeout: float | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"{func.__qualname__}: an operation must be an 'async def'")
        params = list(inspect.signature(func).parameters.values())
        if len(params) < 2:
            raise TypeError(f"{func.__qualname__}: an operation takes (self, session, ...)")
        for p in params[2:]:
            if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD):
                raise TypeError(
                    f"{func.__qualname__}: parameter {p.name!r} must be positional "
                    "(KATCP arguments are positional)"
                )
            if p.name in ("self", "req"):
                raise TypeError(f"{func.__qualname__}: parameter name {p.name!r} is reserved")
            if p.annotation is p.empty:
                raise TypeError(f"{func.__qualname__}: parameter {p.name!r} has no annotation")
        self.func = func
        self.kind = OpKind(kind)
        self.name = name if name is not None else func.__name__.replace("_", "-")
        if "_" in self.name:
            raise ValueError(f"operation name {self.name!r}: use '-' rather than '_'")
        Message(Message.REQUEST, f"{self.name}-start")  # validates the name
        self.signature = inspect.Signature(params[2:])
        self.stop_timeout = stop_timeout
        self.doc = inspect.getdoc(func) or f"The {self.kind.value} {self.name}."
        self.__doc__ = self.doc
        self.__name__ = func.__name__

    @property
    def summary(self) -> str:
        """First paragraph of the docstring, on one line."""
        return " ".join(self.doc.split("\n\n", 1)[0].split())

    def hints(self) -> dict[str, Any]:
        """Resolved parameter annotations (strings from ``from __future__`` evaluated)."""
        try:
            return typing.get_type_hints(self.func, include_extras=True)
        except Exception:  # a forward reference not yet defined: keep the raw ones
            return dict(self.func.__annotations__)

    def describe_params(self) -> list[dict[str, Any]]:
        """The parameters as JSON-ready dicts: name, type, required, default, multiple."""
        hints = self.hints()
        out = []
        for p in self.signature.parameters.values():
            ann = hints.get(p.name, p.annotation)
            entry: dict[str, Any] = {
                "name": p.name,
                "type": getattr(ann, "__name__", str(ann)),
                "required": p.default is p.empty and p.kind is not p.VAR_POSITIONAL,
                "multiple": p.kind is p.VAR_POSITIONAL,
            }
            if p.default is not p.empty:
                entry["default"] = jsonable(p.default)
            out.append(entry)
        return out

    def __repr__(self) -> str:
        return f"<OpDef {self.kind.value} {self.name}{self.signature}>"


@overload
def task(func: _F, /) -> OpDef: ...
@overload
def task(*, name: str | None = None) -> Callable[[_F], OpDef]: ...
def task(func: _F | None = None, /, *, name: str | None = None) -> Any:
    """Declare a task: an operation that ends on its own and may be aborted.

    ``@task async def slew(self, session, az: float, el: float): ...`` — parameters after
    ``session`` are annotated like request handlers (``int``, ``float``, ``bool``, ``str``,
    an ``Enum``, ``Optional[X]``, a kattype) and come from ``?slew-start``'s arguments.
    Abort cancels the coroutine (``asyncio.CancelledError`` at its current ``await``).

    The return value sets the outcome: None → success; ``(ok, message)`` or ``ok`` (a
    bool) → success is ``ok``; a str → success with that message. An exception ends the
    session failed with the exception's text.
    """

    def decorate(f: _F) -> OpDef:
        return OpDef(f, OpKind.TASK, name=name)

    return decorate(func) if func is not None else decorate


@overload
def process(func: _F, /) -> OpDef: ...
@overload
def process(
    *, name: str | None = None, stop_timeout: float | None = None
) -> Callable[[_F], OpDef]: ...
def process(
    func: _F | None = None, /, *, name: str | None = None, stop_timeout: float | None = None
) -> Any:
    """Declare a process: an operation that runs until stopped.

    The coroutine loops until ``session.stop_requested`` (``await session.sleep(dt)``
    returns True then) and returns; a clean return after a stop is a success. With
    `stop_timeout` a process still running that long after a stop request is cancelled
    (and ends failed). Parameters and return value as for :func:`task`.
    """

    def decorate(f: _F) -> OpDef:
        return OpDef(f, OpKind.PROCESS, name=name, stop_timeout=stop_timeout)

    return decorate(func) if func is not None else decorate


def jsonable(value: Any) -> Any:
    """`value` as JSON can carry it: enums by lower-case name, bytes decoded, else str()."""
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def to_json(value: Any) -> str:
    """Compact JSON of `value`."""
    # Compact: no spaces, so nothing needs KATCP escaping on the wire.
    return json.dumps(value, separators=(",", ":"))


def outcome(result: Any) -> tuple[bool, str | None]:
    """Turn an operation's return value into ``(success, message)``."""
    if result is None:
        return True, None
    if isinstance(result, bool):
        return result, None
    if isinstance(result, str):
        return True, result
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], bool):
        return result[0], None if result[1] is None else str(result[1])
    return True, f"Returned {result!r}."
