"""Names katcp-python's ``katcp.client`` module exports besides its client classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..message import Message

__all__ = ["address_to_string", "make_threadsafe", "make_threadsafe_blocking", "request_check"]

F = TypeVar("F", bound=Callable[..., Any])


def address_to_string(addr_tuple: tuple[Any, ...]) -> str:
    """``("host", 7147)`` -> ``"host:7147"``."""
    return ":".join(str(part) for part in addr_tuple)


def make_threadsafe(meth: F) -> F:
    """Mark a client method to run on the client's loop; from another thread it is
    scheduled there and returns None (once :meth:`enable_thread_safety` was called)."""
    meth.make_threadsafe = True  # type: ignore[attr-defined]
    return meth


def make_threadsafe_blocking(meth: F) -> F:
    """Mark a client method to run on the client's loop; from another thread the caller
    waits for its result (once :meth:`enable_thread_safety` was called)."""
    meth.make_threadsafe_blocking = True  # type: ignore[attr-defined]
    return meth


def request_check(client: Any, exception: type[Exception], *msg_parms: Any, **kwargs: Any) -> Any:
    """Send a blocking request and raise ``exception`` unless the reply is ``ok``.

    Returns
    -------
    (Message, list of Message)
        The reply and informs.
    """
    req_msg = Message.request(*msg_parms)
    if kwargs.get("timeout") is not None:
        reply, informs = client.blocking_request(req_msg, timeout=kwargs["timeout"])
    else:
        reply, informs = client.blocking_request(req_msg)
    if not reply.reply_ok():
        # katcp-python's text, line breaks included.
        raise exception(
            f'Unexpected failure reply "{reply}"\n with device at '
            f'{client.bind_address_string}, request \n"{req_msg}"'
        )
    return reply, informs
