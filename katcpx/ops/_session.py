"""One run of an operation: its status, timestamps, messages and published data."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..crossing import LoopBinding

__all__ = ["OpKind", "OpSession", "OpStatus", "idle_session"]

log = logging.getLogger("katcp.ops")


class OpKind(str, enum.Enum):
    """What kind of operation: a task ends on its own, a process runs until stopped."""

    TASK = "task"
    PROCESS = "process"


class OpStatus(str, enum.Enum):
    """Status of an operation (the values of its ``op.<name>.status`` sensor).

    ``idle`` means the operation has never run; a session moves through ``starting`` →
    ``running`` → ``stopping`` (only when stopped or aborted) → ``done``.
    """

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    DONE = "done"


#: Status order: a session never goes back to an earlier status.
_ORDER = {s: i for i, s in enumerate(OpStatus)}


class OpSession:
    """One run of an operation, passed to the operation's coroutine as ``session``.

    The server creates it; operation code reads :attr:`stop_requested`, and calls
    :meth:`add_message`, :meth:`publish` and may set :attr:`degraded`. Everything else is
    read-only for the operation. Methods are meant to be called on the server's event loop;
    :meth:`add_message` and :meth:`publish` are also safe from other threads (e.g. code run
    with ``asyncio.to_thread``).

    Parameters
    ----------
    session_id
        Number of this session (unique within the server).
    op_name
        KATCP name of the operation (``cool-down``).
    kind
        Task or process.
    params
        The start parameters, by name (kept in the encoded session).
    on_change
        Called with the session after every change (status, message, data, degraded).
    on_message
        Called with ``(session, timestamp, text)`` for every new message.
    max_messages
        Messages kept (the oldest are dropped); a process may run for months.
    binding
        The server's loop binding: :meth:`add_message` and :meth:`publish` called from
        other threads are handed over through it. None: every call is taken as made on
        the loop (unit tests).
    """

    def __init__(
        self,
        session_id: int,
        op_name: str,
        kind: OpKind,
        params: dict[str, Any] | None = None,
        on_change: Callable[[OpSession], None] | None = None,
        on_message: Callable[[OpSession, float, str], None] | None = None,
        max_messages: int = 100,
        binding: LoopBinding | None = None,
    ) -> None:
        self.session_id = session_id
        self.op_name = op_name
        self.kind = kind
        self.params: dict[str, Any] = dict(params or {})
        self.status = OpStatus.STARTING
        #: None while the session runs; then whether it ended without error.
        self.success: bool | None = None
        self.start_time = time.time()
        self.end_time: float | None = None
        self.messages: deque[tuple[float, str]] = deque(maxlen=max_messages)
        self._messages_total = 0
        self.data: dict[str, Any] = {}
        self._degraded = False
        self._on_change = on_change
        self._on_message = on_message
        self._binding = binding
        # Made on the loop that runs the operation (none when built outside a loop).
        self._stop_event: asyncio.Event | None = None
        self._done: asyncio.Future[None] | None = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            self._stop_event = asyncio.Event()
            self._done = loop.create_future()

    def begin(self) -> None:
        """Announce the ``starting`` status (once its owner is ready for the change)."""
        if self._messages_total == 0:
            self.add_message(f'Status is now "{self.status.value}".')

    # -- state for operation code ---------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        """Whether a stop (process) or abort (task) was requested: time to wrap up."""
        return self._stop_event is not None and self._stop_event.is_set()

    async def until_stop_requested(self) -> None:
        """Return once a stop (or abort) is requested."""
        assert self._stop_event is not None
        await self._stop_event.wait()

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on a stop request.

        Returns
        -------
        bool
            True if a stop was requested (the loop should end), False after a full sleep.
        """
        assert self._stop_event is not None
        if self._stop_event.is_set():
            return True
        try:
            await asyncio.wait_for(self._stop_event.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    @property
    def degraded(self) -> bool:
        """Whether the operation runs but with a non-fatal problem (set by the operation)."""
        return self._degraded

    @degraded.setter
    def degraded(self, value: bool) -> None:
        if bool(value) != self._degraded:
            self._degraded = bool(value)
            self._changed()

    def add_message(self, text: str, timestamp: float | None = None) -> None:
        """Add a timestamped message (also sent as ``#op-message`` to every client)."""
        if self._off_loop():
            self._hand_over(self.add_message, text, timestamp)
            return
        ts = time.time() if timestamp is None else timestamp
        self.messages.append((ts, str(text)))
        self._messages_total += 1
        if self._on_message is not None:
            self._on_message(self, ts, str(text))
        self._changed()

    def publish(self, data: dict[str, Any] | None = None, /, **items: Any) -> None:
        """Merge `data` and `items` into :attr:`data` (must be JSON-serialisable).

        Raises
        ------
        TypeError
            If a value cannot be encoded as JSON (raised here, in the operation's code,
            rather than later when a client asks for the session).
        """
        update = dict(data or {}, **items)
        json.dumps(update)
        if self._off_loop():
            self._hand_over(self.publish, update)
            return
        self.data.update(update)
        self._changed()

    def _off_loop(self) -> bool:
        binding = self._binding
        return binding is not None and not binding.on_loop()

    def _hand_over(self, func: Callable[..., None], *args: Any) -> None:
        assert self._binding is not None
        if not self._binding.call(func, *args):
            log.warning("%r: %s%r dropped: the server has stopped", self, func.__name__, args)

    # -- state for the server -------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the session has ended."""
        return self.status is OpStatus.DONE

    def until_done(self) -> Awaitable[None]:
        """Awaitable that resolves when the session has ended (shielded: cancel-safe)."""
        assert self._done is not None
        return asyncio.shield(self._done)

    def set_status(self, status: OpStatus | str) -> None:
        """Move to `status` (never backwards; no-op when already there)."""
        status = OpStatus(status)
        if _ORDER[status] <= _ORDER[self.status]:
            return
        self.status = status
        self.add_message(f'Status is now "{status.value}".')

    def request_stop(self) -> None:
        """Flag a stop request and move to ``stopping`` (if still running)."""
        if self._stop_event is not None:
            self._stop_event.set()
        if not self.done:
            self.set_status(OpStatus.STOPPING)

    def finish(self, success: bool, message: str | None = None) -> None:
        """End the session with `success`, adding `message` first if given."""
        if self.done:
            return
        if message:
            self.add_message(message)
        self.success = bool(success)
        self.end_time = time.time()
        self.set_status(OpStatus.DONE)
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    def encoded(self) -> dict[str, Any]:
        """The session as a JSON-serialisable dict (what clients receive).

        Keys: ``session_id``, ``op_name``, ``op_kind``, ``status``, ``success``,
        ``degraded``, ``start_time``, ``end_time``, ``params``, ``data``, ``messages`` (a
        list of ``[timestamp, text]``, oldest first) and ``messages_total``.
        """
        return {
            "session_id": self.session_id,
            "op_name": self.op_name,
            "op_kind": self.kind.value,
            "status": self.status.value,
            "success": self.success,
            "degraded": self._degraded,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "params": self.params,
            "data": self.data,
            "messages": [[ts, text] for ts, text in self.messages],
            "messages_total": self._messages_total,
        }

    def __repr__(self) -> str:
        return f"<OpSession {self.op_name}[{self.session_id}] {self.status.value}>"


def idle_session(op_name: str, kind: OpKind) -> dict[str, Any]:
    """The encoded "session" of an operation that has never run."""
    return {
        "session_id": None,
        "op_name": op_name,
        "op_kind": kind.value,
        "status": OpStatus.IDLE.value,
        "success": None,
        "degraded": False,
        "start_time": None,
        "end_time": None,
        "params": {},
        "data": {},
        "messages": [],
        "messages_total": 0,
    }
