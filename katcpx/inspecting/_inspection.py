"""How the inspecting client inspects: ``?help``, ``?request-timeout-hint`` and
``?sensor-list`` into its request and sensor indexes, and what changed.

:class:`InspectionMixin` keeps katcp-python 0.9.3's attribute and method names
(``_requests_index``, ``_update_index``, ``_difference`` ...), which its test suite uses.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from ..asyncutil import future_timeout_manager
from ..compat import ensure_native_str
from ..message import Message
from ..resource import AttrDict
from ._types import SyncError

__all__ = ["InspectionMixin", "returns_future"]

T = TypeVar("T")


def returns_future(
    method: Callable[..., Coroutine[Any, Any, T]],
) -> Callable[..., asyncio.Future[T]]:
    """Make an ``async def`` method return a future (katcp-python's coroutines do)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> asyncio.Future[T]:
        return asyncio.ensure_future(method(*args, **kwargs))

    return wrapper


class InspectionMixin:
    """The inspection half of :class:`~katcpx.inspecting.InspectingClientAsync`."""

    katcp_client: Any
    sync_timeout: float
    _requests_index: dict[str, dict[str, Any]]
    _sensors_index: dict[str, dict[str, Any]]
    _sensor_object_cache: dict[str, Any]

    @staticmethod
    def _update_index(index: dict[str, dict[str, Any]], name: str, data: dict[str, Any]) -> None:
        entry = index.get(name)
        if entry is None:
            index[name] = data
            return
        for key, value in data.items():
            if entry.get(key) != value:
                entry[key] = value
                entry["_changed"] = True

    @returns_future
    async def inspect(self) -> AttrDict | None:
        """Inspect requests and sensors; return the model changes (None if none).

        On failure the model is left as it was before.

        Raises
        ------
        SyncError
            If the device does not answer ``ok``.
        """
        timeouts = future_timeout_manager(self.sync_timeout)
        sensors_before = copy.copy(self._sensors_index)
        requests_before = copy.copy(self._requests_index)
        try:
            request_changes = await self.inspect_requests(timeout=timeouts.remaining())
            sensor_changes = await self.inspect_sensors(timeout=timeouts.remaining())
        except Exception:
            self._sensors_index = sensors_before
            self._requests_index = requests_before
            raise
        changes = AttrDict()
        if request_changes:
            changes["requests"] = request_changes
        if sensor_changes:
            changes["sensors"] = sensor_changes
        return changes or None

    async def _request(self, msg: Message, timeout: float | None) -> tuple[Message, list[Message]]:
        return await self.katcp_client.future_request(msg, timeout=timeout)

    @returns_future
    async def inspect_requests(self, name: str | None = None, timeout: float | None = None) -> Any:
        """Inspect all requests (or the one called ``name``); return the changes or None.

        Raises
        ------
        SyncError
            If ``?help`` (or ``?request-timeout-hint``) is not answered ``ok`` (an unknown
            single request is not an error: it is removed).
        """
        maybe_timeout = future_timeout_manager(timeout)
        msg = Message.request("help") if name is None else Message.request("help", name)
        reply, informs = await self._request(msg, maybe_timeout.remaining())
        if not reply.reply_ok():
            unknown = len(reply.arguments) > 1 and b"Unknown request" in reply.arguments[1]
            if name is None or not unknown:
                raise SyncError(
                    f"Error reply during sync process for {self.katcp_client.bind_address_string}: {reply}"
                )
        flags = self.katcp_client.protocol_flags
        hints: dict[str, float] = {}
        if flags is not None and flags.request_timeout_hints:
            hints = await self._get_request_timeout_hints(name, maybe_timeout.remaining())
        before = set(self._requests_index)
        seen = set()
        for inform in informs:
            req_name = ensure_native_str(inform.arguments[0])
            seen.add(req_name)
            data = {
                "name": req_name,
                "description": ensure_native_str(inform.arguments[1]),
                "timeout_hint": hints.get(req_name),
            }
            self._update_index(self._requests_index, req_name, data)
        added, removed = self._difference(before, seen, name, self._requests_index)
        return AttrDict(added=added, removed=removed) if added or removed else None

    async def _get_request_timeout_hints(
        self, name: str | None, timeout: float | None
    ) -> dict[str, float]:
        args = ["request-timeout-hint"] + ([name] if name else [])
        msg = Message.request(*args)
        reply, informs = await self._request(msg, timeout)
        if not reply.reply_ok():
            raise SyncError(f'Error retrieving request timeout hints: "{reply}" for {msg}')
        hints = {}
        for inform in informs:
            hint = float(inform.arguments[1])
            if hint > 0:
                hints[ensure_native_str(inform.arguments[0])] = hint
        return hints

    @returns_future
    async def inspect_sensors(self, name: str | None = None, timeout: float | None = None) -> Any:
        """Inspect all sensors (or the one called ``name``); return the changes or None.

        Raises
        ------
        SyncError
            If ``?sensor-list`` is not answered ``ok`` (an unknown single sensor is not an
            error: it is removed).
        """
        msg = (
            Message.request("sensor-list") if name is None else Message.request("sensor-list", name)
        )
        reply, informs = await self._request(msg, timeout)
        if not reply.reply_ok():
            unknown = len(reply.arguments) > 1 and b"Unknown sensor" in reply.arguments[1]
            if name is None or not unknown:
                raise SyncError(f"Error reply during sync process: {reply}")
        before = set(self._sensors_index)
        seen = set()
        for inform in informs:
            args = [ensure_native_str(a) for a in inform.arguments]
            seen.add(args[0])
            data = {
                "description": args[1],
                "units": args[2],
                "sensor_type": args[3],
                "params": args[4:],
            }
            self._update_index(self._sensors_index, args[0], data)
        added, removed = self._difference(before, seen, name, self._sensors_index)
        for sensor_name in removed:
            self._sensor_object_cache.pop(sensor_name, None)
        return AttrDict(added=added, removed=removed) if added or removed else None

    @staticmethod
    def _difference(
        original: Iterable[str],
        updated: Iterable[str],
        name: str | None,
        index: dict[str, dict[str, Any]],
    ) -> tuple[set[str], set[str]]:
        """Added and removed names; a changed entry counts as both."""
        original, updated = set(original), set(updated)
        added = updated - original
        if name is None:
            removed = original - updated
        elif name in original and name not in updated:
            removed = {name}
        else:
            removed = set()
        for key in removed:
            index.pop(key, None)
        for key in updated - added - removed:
            if index[key].get("_changed"):
                index[key]["_changed"] = False
                added.add(key)
                removed.add(key)
        return added, removed
