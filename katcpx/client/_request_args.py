"""Checks of a request API's arguments, made in the caller's thread.

``blocking_request``, ``callback_request``, ``future_request`` and ``call`` hand a request to
the client's loop. An argument the loop cannot use (an inform instead of a request, a timeout
of ``"1"``) must fail in the caller at once, with the error katcp-python 0.9.3 raises, not on
the loop (where it would only be logged, and the caller would wait for its timeout).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import numbers
from collections.abc import Callable
from typing import Any

from ..errors import NotARequestError
from ..message import Message

__all__ = ["check_request", "check_timeout", "check_callbacks", "failed_future"]


def check_request(api: str, msg: Message, timeout: Any = None) -> None:
    """Refuse anything but a request message, and a timeout that is not seconds or None.

    Parameters
    ----------
    api
        The method checking, for the error text (``"blocking_request"``).
    msg
        The message the caller wants sent.
    timeout
        The caller's timeout, seconds or None.

    Raises
    ------
    NotARequestError
        (An ``AssertionError``, as katcp-python raises.) `msg` is a reply or an inform.
    AttributeError
        `msg` is not a message at all (as katcp-python raises).
    TypeError
        `timeout` is neither a number nor None (as katcp-python raises).
    """
    if msg.mtype != Message.REQUEST:
        raise NotARequestError(
            f"{api}() sends requests only, not the {Message.TYPE_NAMES.get(msg.mtype, '?')} {msg}"
        )
    check_timeout(api, timeout)


def check_timeout(api: str, timeout: Any) -> None:
    """Raise ``TypeError`` unless `timeout` is a number of seconds or None."""
    if timeout is not None and not isinstance(timeout, numbers.Real):
        raise TypeError(f"{api}() timeout must be a number of seconds or None, not {timeout!r}")


def check_callbacks(
    reply_cb: Callable[..., Any] | None, inform_cb: Callable[..., Any] | None, user_data: Any
) -> None:
    """Raise ``TypeError`` for a callback that cannot be called, or user data not iterable."""
    for what, cb in (("reply_cb", reply_cb), ("inform_cb", inform_cb)):
        if cb is not None and not callable(cb):
            raise TypeError(f"callback_request() {what} must be callable or None, not {cb!r}")
    if user_data is not None:
        try:
            iter(user_data)
        except TypeError:
            raise TypeError(
                f"callback_request() user_data must be a tuple (the callbacks' extra"
                f" arguments) or None, not {user_data!r}"
            ) from None


def failed_future(
    exc: BaseException, loop: asyncio.AbstractEventLoop | None
) -> asyncio.Future[Any] | concurrent.futures.Future[Any]:
    """A future that already failed with `exc`, of the kind ``future_request`` returns.

    katcp-python's ``future_request`` hands back its argument errors in the future it
    returns rather than raising them.

    Parameters
    ----------
    exc
        The error.
    loop
        The client's loop when called on it; None from another thread, where the future
        belongs to the caller's running loop, or is a ``concurrent.futures.Future`` without
        one.
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            cfut: concurrent.futures.Future[Any] = concurrent.futures.Future()
            cfut.set_exception(exc)
            return cfut
    # Made on this thread's own loop, so it is done when returned (wrap_future is not).
    fut = loop.create_future()
    fut.set_exception(exc)
    return fut
