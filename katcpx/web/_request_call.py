"""A browser's KATCP request, issued through a hub's resource: checked, timed, summarised.

Both :class:`~katcpx.web._hub.DeviceHub` and the REST and websocket handlers see a request's
outcome as one JSON-ready dict, whatever happened: a reply, a timeout, a lost link.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from ..client import is_timeout_reply
from ..errors import RequestTimeout
from ..resource import KATCPRequest
from ._errors import HubError

__all__ = ["issue"]


async def issue(
    device: str,
    obj: KATCPRequest,
    args: Sequence[Any],
    timeout: float | None,
    default_timeout: float,
    use_hint: bool = True,
) -> dict[str, Any]:
    """Issue request `obj` of `device` and summarise its reply (see ``DeviceHub.call``).

    Parameters
    ----------
    timeout
        Seconds to wait; None uses the device's hint (with `use_hint`), else
        `default_timeout`.

    Raises
    ------
    HubError
        An argument is not a scalar, or `timeout` is not a positive number.
    """
    for arg in args:
        if not (arg is None or isinstance(arg, (str, int, float, bool))):
            raise HubError(f"request arguments must be scalars, not {type(arg).__name__}")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise HubError("timeout must be a positive number")
    if timeout is None:
        hint = obj.timeout_hint if use_hint else None
        timeout = hint or default_timeout
    started = time.monotonic()
    result: dict[str, Any] = {"device": device, "request": obj.name}
    try:
        reply = await asyncio.wait_for(
            obj.issue_request(*args, timeout=float(timeout)), float(timeout) + 1.0
        )
    except (RequestTimeout, asyncio.TimeoutError):
        result.update(
            ok=False,
            status="timeout",
            reply=[],
            informs=[],
            error=_no_reply(timeout),
        )
    except Exception as exc:
        result.update(ok=False, status="error", reply=[], informs=[], error=str(exc))
    else:
        arguments = [a.decode("utf-8", "replace") for a in reply.reply.arguments]
        status = arguments[0] if arguments else "invalid"
        result.update(
            ok=status == "ok",
            status=status if status in ("ok", "fail") else "invalid",
            reply=arguments[1:],
            informs=[[a.decode("utf-8", "replace") for a in m.arguments] for m in reply.informs],
        )
        if status != "ok":
            result["error"] = " ".join(arguments[1:]) or status
            # The client turns a timeout into a local fail reply, as katcp-python does.
            if is_timeout_reply(reply.reply):
                result["status"] = "timeout"
                result["error"] = _no_reply(timeout)
    result["elapsed"] = round(time.monotonic() - started, 6)
    return result


def _no_reply(timeout: float) -> str:
    """The error of a request that got no reply within `timeout` seconds, with the fix."""
    return (
        f"no reply within {float(timeout):g} s; the request may still be running on the "
        'device: give a larger "timeout" (seconds)'
    )
