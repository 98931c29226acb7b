"""The metaclass that turns ``request_*``/``inform_*``/``reply_*`` methods into handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..compat import convert_method_name
from ..errors import MissingDocstringError

__all__ = ["DeviceMetaclass", "convert_method_name", "prepare_handler"]

Handler = Callable[..., Any]

#: Marks a function that already went through ``kattypes.prepare_request_handler``.
_PREPARED = "_katcpx_prepared"


def prepare_handler(func: Handler, major: int = 5) -> Handler:
    """Run `func` through ``kattypes.prepare_request_handler`` exactly once.

    `major` is the KATCP major version annotated arguments are parsed for.

    Annotated ``(self, req, a: int, ...)`` handlers come back wrapped; plain
    ``(self, req, msg)`` handlers come back unchanged.
    """
    if getattr(func, _PREPARED, False):
        return func
    # Imported here: kattypes is a sibling module loaded only when a server class is built.
    from ..kattypes import prepare_request_handler

    prepared = prepare_request_handler(func, major)
    try:
        setattr(prepared, _PREPARED, True)
    except AttributeError:  # pragma: no cover - builtins/bound methods refuse attributes
        pass
    return prepared


class DeviceMetaclass(type):
    """Metaclass for device servers (and clients).

    Collects the methods named ``request_*``, ``inform_*`` and ``reply_*`` into the class
    dictionaries ``_request_handlers``, ``_inform_handlers`` and ``_reply_handlers``, keyed
    by KATCP name (``request_sensor_list`` → ``sensor-list``). Every handler must have a
    docstring (it is the ``?help`` text); a class that defines one without is refused with
    :class:`~katcpx.errors.MissingDocstringError` (a ``TypeError`` and, as in katcp-python,
    an ``AssertionError``) when it is created. Handlers that :meth:`check_protocol` rejects for the
    class's ``PROTOCOL_INFO`` are left out. Request handlers go through
    ``kattypes.prepare_request_handler`` once, where they are defined.
    """

    _request_handlers: dict[str, Handler]
    _inform_handlers: dict[str, Handler]
    _reply_handlers: dict[str, Handler]

    def __init__(cls, name: str, bases: tuple[type, ...], dct: dict[str, Any]) -> None:
        super().__init__(name, bases, dct)
        # Prepare handlers defined by this class and store the result back, so subclasses
        # inherit the prepared version and nothing is wrapped twice.
        for attr, value in dct.items():
            if attr.startswith("request_") and callable(value):
                if value.__doc__ is None:
                    raise MissingDocstringError(
                        "Request", convert_method_name("request_", attr), f"{name}.{attr}"
                    )
                info = getattr(cls, "PROTOCOL_INFO", None)
                major = info.major if info is not None else 5
                setattr(cls, attr, prepare_handler(value, major))
        cls._request_handlers = {}
        cls._inform_handlers = {}
        cls._reply_handlers = {}
        for attr in dir(cls):
            if attr.startswith("request_"):
                prefix, table = "request_", cls._request_handlers
            elif attr.startswith("inform_"):
                prefix, table = "inform_", cls._inform_handlers
            elif attr.startswith("reply_") and attr != "reply_inform":
                # reply_inform is the server's send method, not a handler.
                prefix, table = "reply_", cls._reply_handlers
            else:
                continue
            handler = getattr(cls, attr)
            if not callable(handler):
                continue
            if handler.__doc__ is None:
                kind = prefix[:-1].capitalize()  # katcp-python's "Inform 'x' has no docstring."
                raise MissingDocstringError(
                    kind, convert_method_name(prefix, attr), f"{name}.{attr}"
                )
            if cls.check_protocol(handler):
                table[convert_method_name(prefix, attr)] = handler

    def check_protocol(cls, handler: Handler) -> bool:
        """Return False if `handler` should be filtered out for this class.

        A handler is kept when the class's ``PROTOCOL_INFO`` is at least the handler's
        ``_minimum_katcp_version`` and has all of its ``_has_katcp_protocol_flags``.
        Classes without ``PROTOCOL_INFO`` (clients) keep every handler.
        """
        info = getattr(cls, "PROTOCOL_INFO", None)
        if info is None:
            return True
        minimum = getattr(handler, "_minimum_katcp_version", None)
        if minimum is not None and (info.major, info.minor) < tuple(minimum):
            return False
        flags = getattr(handler, "_has_katcp_protocol_flags", None)
        if flags:
            return all(info.supports(flag) for flag in flags)
        return True
