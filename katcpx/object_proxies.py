"""Transparent proxies: katcp-python's ``katcp.object_proxies`` names.

A proxy forwards attribute reads, writes, deletes and the operators (calls, ``len``,
iteration, indexing, comparisons, arithmetic, ``str``, ``hash``, ``bool``) to its
``__subject__``:

- :class:`ObjectProxy` wraps a given object;
- :class:`CallbackProxy` calls a function for the subject at every use;
- :class:`LazyProxy` calls it once, on first use, and keeps the result.

The ``*Wrapper`` variants also keep the attributes their own subclasses define (methods,
properties, class attributes) instead of forwarding them, so a subclass overrides part of
the subject. (The resources' thread-safe wrappers use the smaller
:class:`katcpx._object_proxy.ObjectWrapper`, which forwards attributes only.)
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

__all__ = [
    "AbstractProxy",
    "ObjectProxy",
    "CallbackProxy",
    "LazyProxy",
    "AbstractWrapper",
    "ObjectWrapper",
    "CallbackWrapper",
    "LazyWrapper",
]

#: Operator methods forwarded to the subject, as functions of (subject, *args).
_OPERATORS: dict[str, Callable[..., Any]] = {
    "__call__": lambda s, *a, **k: s(*a, **k),
    "__len__": len,
    "__iter__": iter,
    "__reversed__": reversed,
    "__contains__": operator.contains,
    "__getitem__": operator.getitem,
    "__setitem__": operator.setitem,
    "__delitem__": operator.delitem,
    "__bool__": bool,
    "__str__": str,
    "__bytes__": bytes,
    "__format__": format,
    "__hash__": hash,
    "__int__": int,
    "__float__": float,
    "__index__": operator.index,
    "__neg__": operator.neg,
    "__pos__": operator.pos,
    "__abs__": abs,
    "__invert__": operator.invert,
    "__enter__": lambda s: s.__enter__(),
    "__exit__": lambda s, *a: s.__exit__(*a),
}
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    _OPERATORS[f"__{_name}__"] = getattr(operator, _name)
for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor"):
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    _OPERATORS[f"__{_name}__"] = _op
    _OPERATORS[f"__r{_name}__"] = lambda s, o, _op=_op: _op(o, s)
_OPERATORS["__lshift__"] = operator.lshift
_OPERATORS["__rshift__"] = operator.rshift


def _subject(proxy: Any) -> Any:
    return object.__getattribute__(proxy, "__subject__")


class AbstractProxy:
    """Forward attributes and operators to ``__subject__``, which subclasses provide."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        subject = _subject(self)
        return subject if name == "__subject__" else getattr(subject, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_subject(self), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(_subject(self), name)

    def __repr__(self) -> str:
        return repr(_subject(self))


def _forwarder(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        return func(_subject(self), *args, **kwargs)

    forward.__name__ = name
    return forward


for _name, _func in _OPERATORS.items():
    setattr(AbstractProxy, _name, _forwarder(_name, _func))


class ObjectProxy(AbstractProxy):
    """Proxy for a given object."""

    __slots__ = ("__subject__",)

    def __init__(self, subject: Any) -> None:
        object.__setattr__(self, "__subject__", subject)


class CallbackProxy(AbstractProxy):
    """Proxy for the object ``func()`` returns, called at every use."""

    __slots__ = ("__callback__",)

    def __init__(self, func: Callable[[], Any]) -> None:
        object.__setattr__(self, "__callback__", func)

    @property
    def __subject__(self) -> Any:
        return object.__getattribute__(self, "__callback__")()


class LazyProxy(CallbackProxy):
    """Proxy for the object ``func()`` returns, called once on first use."""

    __slots__ = ("__cache__",)

    @property
    def __subject__(self) -> Any:
        try:
            return object.__getattribute__(self, "__cache__")
        except AttributeError:
            value = object.__getattribute__(self, "__callback__")()
            object.__setattr__(self, "__cache__", value)
            return value


def _own(proxy: Any, name: str) -> bool:
    """Whether `name` is defined by a wrapper subclass (not by the proxy machinery)."""
    for klass in type(proxy).__mro__:
        if klass.__module__ == __name__ or klass is object:
            continue
        if name in vars(klass):
            return True
    return False


class AbstractWrapper(AbstractProxy):
    """A proxy whose subclasses' own attributes are not forwarded."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name != "__subject__" and _own(self, name):
            return object.__getattribute__(self, name)
        return AbstractProxy.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if _own(self, name):
            object.__setattr__(self, name, value)
        else:
            AbstractProxy.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if _own(self, name):
            object.__delattr__(self, name)
        else:
            AbstractProxy.__delattr__(self, name)


class ObjectWrapper(ObjectProxy, AbstractWrapper):
    """:class:`ObjectProxy` whose subclasses may define attributes of their own."""

    __slots__ = ()


class CallbackWrapper(CallbackProxy, AbstractWrapper):
    """:class:`CallbackProxy` whose subclasses may define attributes of their own."""

    __slots__ = ()


class LazyWrapper(LazyProxy, AbstractWrapper):
    """:class:`LazyProxy` whose subclasses may define attributes of their own."""

    __slots__ = ()
