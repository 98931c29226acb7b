"""katcp-python's request, inform and reply decorators."""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ..errors import KatcpTypeError
from ..flags import DEFAULT_KATCP_MAJOR
from ..message import Message
from ._packing import Unpacker, check_multiple_last, pack_types
from ._types import HandlerT, KatcpType, Str

# ---------------------------------------------------------------------------------------
# Decorators
# ---------------------------------------------------------------------------------------


def _method_to_message_name(prefix: str, name: str) -> str:
    return name[len(prefix) :].replace("_", "-")


def _argnames(handler: Callable[..., Any], skip: int) -> list[str]:
    """Names of the handler's positional parameters after the first `skip`.

    A ``*args`` parameter has no name here, as in katcp-python 0.9.3 (its errors say
    ``Error in parameter 1 (): ...`` for it).
    """
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return names[skip:]


def request(
    *types: KatcpType,
    include_msg: bool = False,
    major: int = DEFAULT_KATCP_MAJOR,
    has_req: bool = True,
    _check_req: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for request handler methods that unpacks the request's arguments.

    The decorated method takes ``req`` (and ``msg`` when `include_msg`) followed by one
    argument per type; the result is a ``handler(self, req, msg)``. An ``async def`` method
    gives an ``async def`` handler.

    Parameters
    ----------
    *types
        Types of the request's arguments, in order. Only the last may be ``multiple``.
    include_msg
        Also pass the request message, after ``req``.
    major
        KATCP major version used to unpack.
    has_req
        Whether the handler takes ``req`` (False for :func:`inform` and
        :func:`unpack_message`, where the result is ``handler(self, msg)``).

    Raises
    ------
    FailReply
        From the handler, when an argument is bad or missing, or there are too many:
        ``Error in parameter 2 (gain): could not parse 'x' as float``.

    Examples
    --------
    >>> class MyDevice(DeviceServer):
    ...     @request(Int(), Float())
    ...     @return_reply(Int(), Float())
    ...     def request_myreq(self, req, my_int, my_float):
    ...         return ("ok", my_int + 1, my_float / 2.0)
    """
    del _check_req  # accepted for katcp-python compatibility; it has no effect there either
    check_multiple_last(types)

    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        skip = 1 + int(has_req) + int(include_msg)
        unpack = Unpacker(types, _argnames(handler, skip), major)
        is_async = inspect.iscoroutinefunction(handler)
        raw: Callable[..., Any]
        if has_req:
            if is_async:

                async def raw(self: Any, req: Any, msg: Message) -> Any:
                    new_args = unpack(msg.arguments)
                    if include_msg:
                        return await handler(self, req, msg, *new_args)
                    return await handler(self, req, *new_args)

            else:

                def raw(self: Any, req: Any, msg: Message) -> Any:
                    if include_msg:
                        return handler(self, req, msg, *unpack(msg.arguments))
                    return handler(self, req, *unpack(msg.arguments))

        else:
            if is_async:

                async def raw(self: Any, msg: Message) -> Any:
                    new_args = unpack(msg.arguments)
                    if include_msg:
                        return await handler(self, msg, *new_args)
                    return await handler(self, *new_args)

            else:

                def raw(self: Any, msg: Message) -> Any:
                    if include_msg:
                        return handler(self, msg, *unpack(msg.arguments))
                    return handler(self, *unpack(msg.arguments))

        functools.update_wrapper(raw, handler)
        # Tells prepare_request_handler (and an outer return_reply) that this is done.
        setattr(raw, "_request_decorated", True)  # noqa: B010 (raw's type is a Union)
        return raw

    return decorator


def inform(
    *types: KatcpType, include_msg: bool = False, major: int = DEFAULT_KATCP_MAJOR
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for inform handler methods: unpacks the inform into the method's arguments.

    The result is ``handler(self, msg)``; the method takes (``msg`` when `include_msg`, then)
    one argument per type. See :func:`request` for the parameters and errors.

    Examples
    --------
    >>> class MyClient(AsyncClient):
    ...     @inform(Int(), Float())
    ...     def inform_myinf(self, my_int, my_float):
    ...         ...
    """
    return request(*types, include_msg=include_msg, major=major, has_req=False)


def unpack_message(
    *types: KatcpType, include_msg: bool = False, major: int = DEFAULT_KATCP_MAJOR
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that unpacks a message's arguments into the method's arguments.

    Like :func:`inform`; typically used on reply handlers, e.g.
    ``@unpack_message(Str(), Int())`` on ``def reply_myreq(self, status, value)``.
    """
    return request(*types, include_msg=include_msg, major=major, has_req=False)


def _is_status(status: Any, expected: str) -> bool:
    return bool(status == expected or status == expected.encode("ascii"))


def make_reply(
    msgname: str, types: Sequence[KatcpType], arguments: Sequence[Any], major: int
) -> Message:
    """Build a reply message from a handler's returned sequence.

    Parameters
    ----------
    msgname
        Name of the reply.
    types
        Types of the values that follow an ``ok`` status.
    arguments
        The returned sequence: ``("ok", value, ...)`` or ``(status, description)``.
    major
        KATCP major version used to pack.

    Returns
    -------
    Message
        The reply (without message id; the server adds the request's).

    Raises
    ------
    KatcpTypeError
        If `arguments` is empty, not a sequence, or holds values the types cannot pack.

    Notes
    -----
    As in katcp-python, the status must be ``ok`` or ``fail``; any other raises
    :class:`KatcpTypeError` (a ``ValueError``, as katcp-python raises), so the server replies
    ``fail`` naming the bad status. Spec 5.1 section 2 (table 4) lets a device send other failure
    codes; a handler that means to builds its reply with :meth:`Message.reply` itself.
    """
    if type(arguments) is not tuple and (
        isinstance(arguments, (str, bytes)) or not isinstance(arguments, Sequence)
    ):
        raise KatcpTypeError(
            f"reply to ?{msgname} must be a tuple like ('ok', ...), not {arguments!r}"
        )
    if not arguments:
        raise KatcpTypeError(f"reply to ?{msgname} must start with a status such as 'ok'")
    status = arguments[0]
    if _is_status(status, "ok"):
        return Message(Message.REPLY, msgname, [b"ok", *pack_types(types, arguments[1:], major)])
    if not _is_status(status, "fail"):
        raise KatcpTypeError(f"reply status of ?{msgname} must be 'ok' or 'fail', not {status!r}")
    return Message.reply(msgname, *pack_types((Str(), Str()), arguments, major))


async def async_make_reply(
    msgname: str, types: Sequence[KatcpType], arguments_future: Awaitable[Any], major: int
) -> Message:
    """Await `arguments_future` and build the reply from its result (see :func:`make_reply`).

    Calling this gives a coroutine (katcp-python gave a tornado Future).
    """
    arguments = await arguments_future
    return make_reply(msgname, types, arguments, major)


def then(awaitable: Any, transform: Callable[[Any], Any]) -> Any:
    """Apply `transform` to the eventual result of `awaitable`, keeping its kind.

    An asyncio (or tornado) future gives a future on the same loop; a
    :class:`concurrent.futures.Future` gives another one; anything else awaitable gives a
    coroutine. No asyncio import needed: the future supplies its own loop.
    """
    if hasattr(awaitable, "get_loop") and hasattr(awaitable, "add_done_callback"):
        out = awaitable.get_loop().create_future()
        # Cancelling the result cancels the work behind it.
        out.add_done_callback(lambda o: awaitable.cancel() if o.cancelled() else None)
    elif isinstance(awaitable, concurrent.futures.Future):
        out = concurrent.futures.Future()
    else:

        async def chained() -> Any:
            return transform(await awaitable)

        return chained()

    def done(fut: Any) -> None:
        if out.done():  # the caller cancelled the result
            return
        if fut.cancelled():
            out.cancel()
            return
        exc = fut.exception()
        if exc is not None:
            out.set_exception(exc)
            return
        try:
            out.set_result(transform(fut.result()))
        except Exception as e:  # the transform's error belongs to the result future
            out.set_exception(e)

    awaitable.add_done_callback(done)
    return out


def is_pending_result(value: Any) -> bool:
    return inspect.isawaitable(value) or isinstance(value, concurrent.futures.Future)


def return_reply(
    *types: KatcpType, major: int = DEFAULT_KATCP_MAJOR
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that builds the reply message from a request handler's returned tuple.

    The handler returns ``("ok", value, ...)`` (values packed by `types`) or
    ``("fail", "why")``; the decorated handler returns the reply :class:`Message`. When the
    handler is ``async def`` the wrapper is too; when it returns a future (or other
    awaitable), the wrapper returns a future (or coroutine) that resolves to the reply.

    Parameters
    ----------
    *types
        Types of the values after ``ok``. Only the last may be ``multiple``.
    major
        KATCP major version used to pack.

    Raises
    ------
    ValueError
        At decoration time, if the method's name does not start with ``request_``.
    TypeError
        At decoration time, if a type other than the last is ``multiple``.

    Examples
    --------
    >>> class MyDevice(DeviceServer):
    ...     @request(Int())
    ...     @return_reply(Int(), Float())
    ...     def request_myreq(self, req, my_int):
    ...         return ("ok", my_int + 1, my_int * 2.0)
    """
    check_multiple_last(types)

    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        if not handler.__name__.startswith("request_"):
            raise ValueError(
                "This decorator can only be used on a katcp request handler "
                "(method name should start with 'request_')."
            )
        msgname = _method_to_message_name("request_", handler.__name__)

        def reply_from(result: Any) -> Message:
            return make_reply(msgname, types, result, major)

        raw: Callable[..., Any]
        if inspect.iscoroutinefunction(handler):

            async def raw(self: Any, *args: Any) -> Message:
                result = await handler(self, *args)
                if inspect.isawaitable(result):  # e.g. an async def that returns a future
                    result = await result
                return reply_from(result)

        else:

            def raw(self: Any, *args: Any) -> Any:
                result = handler(self, *args)
                if type(result) is tuple or not is_pending_result(result):
                    return reply_from(result)
                return then(result, reply_from)

        functools.update_wrapper(raw, handler)
        return raw

    return decorator


def send_reply(
    *types: KatcpType, major: int = DEFAULT_KATCP_MAJOR
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that builds a reply from a callback's returned tuple and sends it.

    The callback returns ``(req, "ok", value, ...)`` or ``(req, "fail", "why")``; the reply
    is named after ``req.msg`` and sent with ``req.reply_with_message``. Nothing is returned.

    Parameters
    ----------
    *types
        Types of the values after ``ok``.
    major
        KATCP major version used to pack.

    Examples
    --------
    >>> class MyDevice(DeviceServer):
    ...     @send_reply(Int(), Float())
    ...     def my_callback(self, req):
    ...         return (req, "ok", 5, 2.0)
    """
    check_multiple_last(types)

    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def raw(self: Any, *args: Any) -> None:
            reply_args = handler(self, *args)
            req = reply_args[0]
            req.reply_with_message(make_reply(req.msg.name, types, reply_args[1:], major))

        return raw

    return decorator


# The markers the decorators leave on handlers for the server's metaclass, under
# katcp-python 0.9.3's attribute names (user code and katcp-python's tests read them).
#: Marker: the handler's requests may run concurrently (:func:`concurrent_reply`).
CONCURRENT_REPLY = "_concurrent_reply"
#: Marker: ``(major, minor)``, the lowest version exposing the request.
MINIMUM_KATCP_VERSION = "_minimum_katcp_version"
#: Marker: the protocol flags the server must have to expose the request.
HAS_KATCP_PROTOCOL_FLAGS = "_has_katcp_protocol_flags"
#: Marker: the request's timeout hint in seconds, or None.
REQUEST_TIMEOUT_HINT = "_request_timeout_hint"


def mark_handler(handler: HandlerT, marker: str, value: Any) -> HandlerT:
    """Leave `marker` (one of the marker constants) with `value` on `handler`; return it."""
    setattr(handler, marker, value)
    return handler


def handler_marker(handler: Any, marker: str, default: Any = None) -> Any:
    """The value of `marker` on `handler`, or `default` when it is not marked."""
    return getattr(handler, marker, default)


def concurrent_reply(handler: HandlerT) -> HandlerT:
    """Decorator: let the server read the client's next request before this one replies.

    By default a handler that returns a future (or is ``async def``) holds back the
    connection's next request until it resolves; this marks the handler
    (``_concurrent_reply = True``) so requests from one client run concurrently.
    """
    return mark_handler(handler, CONCURRENT_REPLY, True)


def minimum_katcp_version(major: int, minor: int = 0) -> Callable[[HandlerT], HandlerT]:
    """Decorator: leave the handler out of servers whose protocol version is below this.

    Sets ``_minimum_katcp_version = (major, minor)`` on the handler.

    Parameters
    ----------
    major, minor
        The lowest KATCP version that exposes the request.
    """
    version = (major, minor)

    def decorator(handler: HandlerT) -> HandlerT:
        return mark_handler(handler, MINIMUM_KATCP_VERSION, version)

    return decorator


def has_katcp_protocol_flags(
    protocol_flags: Iterable[str | bytes],
) -> Callable[[HandlerT], HandlerT]:
    """Decorator: leave the handler out of servers that lack any of these protocol flags.

    Sets ``_has_katcp_protocol_flags`` on the handler.

    Parameters
    ----------
    protocol_flags
        Flags such as ``ProtocolFlags.MULTI_CLIENT``.
    """

    def decorator(handler: HandlerT) -> HandlerT:
        return mark_handler(handler, HAS_KATCP_PROTOCOL_FLAGS, protocol_flags)

    return decorator


def request_timeout_hint(timeout_hint: float | None) -> Callable[[HandlerT], HandlerT]:
    """Decorator: recommend a client timeout for the request (``?request-timeout-hint``).

    Sets ``_request_timeout_hint`` (and katcp-python's ``request_timeout_hint``) to the hint
    as a float in seconds, or None for no hint.

    Parameters
    ----------
    timeout_hint
        Seconds the request may reasonably take, or None.
    """
    hint = None if timeout_hint is None else float(timeout_hint)

    def decorator(handler: HandlerT) -> HandlerT:
        handler.request_timeout_hint = hint  # type: ignore[attr-defined]
        return mark_handler(handler, REQUEST_TIMEOUT_HINT, hint)

    return decorator
