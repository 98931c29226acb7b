"""Client side of operations: :class:`OpReply` and the operations accessors.

``ops = ops_for(client_or_resource)`` gives an accessor whose attributes are operations:
``await ops.slew.start(az=10, el=45)``, ``await ops.slew.wait(30)``,
``await ops.track.stop()``. Calling an operation directly runs a task to the end (start,
then wait) and reads a process's status. Wrapped thread-safe resources (and
``sync=True``) give the same methods as plain blocking calls, for scripts.

An accessor sends its requests through a :class:`RequestCaller`: any
``await caller(name, *args, timeout=...)`` that gives ``(reply, informs)``. Clients are
adapted here; resources hand in their own request method (see :func:`op_accessor`), so this
module knows nothing of resources.
"""

from __future__ import annotations

import asyncio
import builtins
import enum
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ..errors import FailReplyError, InvalidReply
from ..message import Message

__all__ = [
    "ERROR",
    "OK",
    "TIMEOUT",
    "AsyncOpAccessor",
    "AsyncOpHandle",
    "OpInfo",
    "OpReply",
    "RequestCaller",
    "ResponseCode",
    "SyncOpAccessor",
    "SyncOpHandle",
    "op_accessor",
    "ops_for",
]

#: Seconds a ``wait`` request may take beyond its own timeout before the client gives up.
WAIT_GRACE = 5.0
#: Seconds each ``wait`` request lasts when waiting without a timeout (it is repeated).
WAIT_CHUNK = 60.0
#: Messages shown by :meth:`OpReply.__repr__`.
REPR_MESSAGES = 10


class ResponseCode(enum.IntEnum):
    """Outcome of an operation call (OCS's ``ocs.OK``/``ERROR``/``TIMEOUT``)."""

    OK = 0
    ERROR = -1
    TIMEOUT = 1

    # Printed, a code reads as its name (``print(reply.status)`` shows OK, not 0); it still
    # compares and formats (``{:d}``) as the integer OCS uses.
    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        if spec and spec[-1] in "bdnoxX":
            return int.__format__(int(self), spec)
        return format(self.name, spec)


OK = ResponseCode.OK
ERROR = ResponseCode.ERROR
TIMEOUT = ResponseCode.TIMEOUT


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.6f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} mins"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


_SHOWN_KEYS = {"op_name", "session_id", "status", "start_time", "end_time", "messages"}


class OpReply(NamedTuple):
    """Reply of an operation call, readable like OCS's ``OCSReply``.

    Attributes
    ----------
    status
        :data:`OK`, :data:`ERROR` (the request failed, e.g. already running) or
        :data:`TIMEOUT` (a wait ended before the operation did).
    msg
        The server's one-line description of the result.
    session
        The session (see ``docs/operations.md``): ``session_id``, ``op_name``, ``op_kind``,
        ``status``, ``success``, ``degraded``, ``start_time``, ``end_time``, ``params``,
        ``data``, ``messages`` (``[timestamp, text]`` pairs) and ``messages_total``. Empty
        when nothing is known.
    """

    status: ResponseCode
    msg: str
    session: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (status :data:`OK`)."""
        return self.status is ResponseCode.OK

    def __repr__(self) -> str:
        lines = [f"OpReply: {self.status.name} : {self.msg}"]
        s = self.session
        if not s:
            return lines[0]
        name = s.get("op_name", "?")
        if s.get("session_id") is None:
            lines.append(f"  {name}: no session yet (status={s.get('status', 'idle')})")
            return "\n".join(lines)
        now = time.time()
        status = s.get("status")
        start, end = s.get("start_time"), s.get("end_time")
        if status == "done" and end is not None:
            how = "without error" if s.get("success") else "with error"
            took = "" if start is None else f", took {_duration(end - start)}"
            state = f"status=done {how} {_duration(max(0.0, now - end))} ago{took}"
        else:
            since = "" if start is None else f" for {_duration(max(0.0, now - start))}"
            state = f"status={status}{since}"
        if s.get("degraded"):
            state += " (degraded)"
        lines.append(f"  {name}[session={s['session_id']}]; {state}")
        messages = s.get("messages") or []
        total = max(len(messages), int(s.get("messages_total") or 0))
        shown = messages[-REPR_MESSAGES:]
        lines.append(f"  messages ({len(shown)} of {total}):")
        lines.extend(f"    {ts:.3f} {text}" for ts, text in shown)
        others = [k for k in s if k not in _SHOWN_KEYS]
        if others:
            lines.append(f"  other keys in .session: {', '.join(others)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.__repr__()


@dataclass
class OpInfo:
    """What ``?op-list`` says about an operation."""

    name: str
    kind: str
    status: str
    params: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""


class RequestCaller(Protocol):
    """How an accessor sends a request: ``await caller(name, *args, timeout=t)``.

    It gives the reply and the informs, ``(reply, informs)``, whatever the reply says
    (``ok``, ``fail`` or ``invalid``); it raises only when no reply came (for example
    ``ConnectionLost`` or ``RequestTimeout``). ``KATCPClientResource``'s request method is
    one; :func:`ops_for` adapts katcpx clients.
    """

    def __call__(
        self, name: str, *args: Any, timeout: float | None = None
    ) -> Awaitable[tuple[Message, list[Message]]]: ...


def _texts(msg: Message) -> list[str]:
    return [a.decode("utf-8", "replace") for a in msg.arguments]


def _client_caller(client: Any) -> RequestCaller:
    """A caller over anything with katcpx's ``await client.call(name, *args, timeout=)``."""

    async def call(
        name: str, *args: Any, timeout: float | None = None
    ) -> tuple[Message, list[Message]]:
        try:
            return await client.call(name, *args, timeout=timeout)
        except (FailReplyError, InvalidReply) as exc:
            # call() raises for a refused request; the accessor reads the refusal itself.
            reply = exc.reply
            if reply is None:
                reply = Message.reply(name, "fail", str(exc))
            return reply, list(exc.informs)

    return call


def _python_name(name: str) -> str:
    return name.replace("-", "_")


class AsyncOpAccessor:
    """Operations of one device, as attributes: ``ops.slew`` is an :class:`AsyncOpHandle`.

    Parameters
    ----------
    caller
        How requests are sent (see :func:`ops_for`).
    timeout
        Seconds to wait for the reply of each request (a ``wait`` adds its own timeout).
    """

    def __init__(
        self, caller: RequestCaller, timeout: float | None = 5.0, device: str = ""
    ) -> None:
        self._caller = caller
        #: Seconds to wait for the reply of each request (a ``wait`` adds its own).
        self.timeout = timeout
        self._infos: dict[str, OpInfo] | None = None
        #: The device's name or address, for messages ("" when unknown).
        self.device = device

    async def call(
        self, name: str, *args: Any, timeout: float | None = None
    ) -> tuple[bool, list[str], list[Message]]:
        """Send request `name`; give whether it succeeded, the reply's arguments after
        ``ok``/``fail``, and the informs. Raises only when no reply came."""
        reply, informs = await self._caller(name, *args, timeout=timeout)
        return reply.reply_ok(), _texts(reply)[1:], list(informs)

    async def unknown(self, name: str) -> str | None:
        """Say that the device has no operation `name` and which it has; None if it has it."""
        try:
            infos = await self.list(refresh=True)
        except FailReplyError:
            infos = {}  # no ?op-list: the device has no operations
        if name in infos:
            return None
        where = f" on {self.device}" if self.device else ""
        has = ", ".join(_python_name(n) for n in sorted(infos)) or "none"
        return f"no operation {name!r}{where}; its operations: {has}"

    async def list(self, refresh: bool = False) -> dict[str, OpInfo]:
        """The device's operations by KATCP name (``?op-list``, cached)."""
        if self._infos is None or refresh:
            ok, args, informs = await self.call("op-list", timeout=self.timeout)
            if not ok:
                raise FailReplyError(f"?op-list failed: {' '.join(args)}")
            infos = {}
            for inform in informs:
                name, kind, status, params, *desc = _texts(inform) + [""]
                infos[name] = OpInfo(name, kind, status, json.loads(params or "[]"), desc[0])
            self._infos = infos
        return self._infos

    async def info(self, name: str) -> OpInfo:
        """:class:`OpInfo` of operation `name` (``KeyError`` if the device has none)."""
        infos = await self.list()
        if name not in infos:
            infos = await self.list(refresh=True)
        try:
            return infos[name]
        except KeyError:
            raise KeyError(f"no operation {name!r} on this device") from None

    def __getitem__(self, name: str) -> AsyncOpHandle:
        return AsyncOpHandle(self, name.replace("_", "-"))

    def __getattr__(self, attr: str) -> AsyncOpHandle:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return self[attr]

    def __dir__(self) -> builtins.list[str]:
        names = [_python_name(n) for n in self._infos or {}]
        return sorted(set(super().__dir__()) | set(names))


class AsyncOpHandle:
    """One operation of a device: ``start``, ``status``, ``wait``, ``stop``/``abort``.

    Every method returns an :class:`OpReply`; none raises for a refused request (the
    reply's status is then :data:`ERROR`). Lost connections and client-side timeouts do
    raise (``ConnectionLost``, ``RequestTimeout``).
    """

    def __init__(self, accessor: AsyncOpAccessor, name: str) -> None:
        self._accessor = accessor
        self.name = name

    async def _call(self, verb: str, *args: Any, timeout: float | None = None) -> OpReply:
        acc = self._accessor
        ok, texts, _ = await acc.call(f"{self.name}-{verb}", *args, timeout=timeout)
        session: dict[str, Any] = {}
        if ok:
            text = texts[0] if texts else ""
            if len(texts) > 1:
                session = json.loads(texts[1])
            return OpReply(OK, text, session)
        # Refused: fill in the session so the reply shows what is going on.
        message = " ".join(texts) or "Request failed."
        unknown = await acc.unknown(self.name)
        if unknown is not None:
            return OpReply(ERROR, f"{unknown} (?{self.name}-{verb}: {message})", session)
        if verb != "status":
            ok, texts, _ = await acc.call(f"{self.name}-status", timeout=acc.timeout)
            if ok and len(texts) > 1:
                session = json.loads(texts[1])
        return OpReply(ERROR, message, session)

    async def start(self, *args: Any, **params: Any) -> OpReply:
        """Start the operation; `params` by name (or `args` in order)."""
        wire = list(args)
        if params:
            wire = await self._wire_args(args, params)
        return await self._call("start", *wire, timeout=self._accessor.timeout)

    async def _wire_args(self, args: tuple[Any, ...], params: dict[str, Any]) -> list[Any]:
        info = await self._accessor.info(self.name)
        spec = info.params
        values: list[Any] = list(args)
        remaining = dict(params)
        for i, p in enumerate(spec):
            if i < len(args):
                if p["name"] in remaining:
                    raise TypeError(f"{self.name}: got multiple values for {p['name']!r}")
                continue
            if p.get("multiple"):
                values.extend(remaining.pop(p["name"], ()))
                break
            if p["name"] in remaining:
                values.append(remaining.pop(p["name"]))
            elif any(q["name"] in remaining for q in spec[i + 1 :]):
                if "default" not in p:
                    raise TypeError(f"{self.name}: missing parameter {p['name']!r}")
                values.append(p["default"])
            else:
                break
        if remaining:
            raise TypeError(f"{self.name}: unknown parameter(s) {', '.join(remaining)}")
        return values

    async def status(self) -> OpReply:
        """The latest session (status idle when the operation never ran)."""
        return await self._call("status", timeout=self._accessor.timeout)

    async def wait(self, timeout: float | None = None) -> OpReply:
        """Wait until the operation is not running; :data:`TIMEOUT` if `timeout` ran out."""
        if timeout is not None:
            reply = await self._call("wait", float(timeout), timeout=timeout + WAIT_GRACE)
        else:
            # Wait in bounded chunks: no request needs an unbounded reply timeout (which
            # some callers, e.g. resources, cannot express).
            while True:
                reply = await self._call("wait", WAIT_CHUNK, timeout=WAIT_CHUNK + WAIT_GRACE)
                if not reply.ok or reply.session.get("status") in ("done", "idle"):
                    break
        if reply.ok and reply.session.get("status") not in ("done", "idle"):
            return OpReply(TIMEOUT, reply.msg, reply.session)
        return reply

    async def stop(self) -> OpReply:
        """Ask a process to stop (an :data:`ERROR` reply for a task)."""
        return await self._verb_for("stop", "process", "abort")

    async def abort(self) -> OpReply:
        """Abort a task (an :data:`ERROR` reply for a process)."""
        return await self._verb_for("abort", "task", "stop")

    async def _verb_for(self, verb: str, kind: str, other: str) -> OpReply:
        info = await self._accessor.info(self.name)
        if info.kind != kind:
            reply = await self.status()
            return OpReply(
                ERROR, f'"{self.name}" is a {info.kind}: use {other}() instead.', reply.session
            )
        return await self._call(verb, timeout=self._accessor.timeout)

    async def __call__(self, *args: Any, **params: Any) -> OpReply:
        """A task: start it and wait for it to end. A process: its status."""
        info = await self._accessor.info(self.name)
        if info.kind == "process":
            if args or params:
                raise TypeError(f"{self.name} is a process: use start(...) to pass parameters")
            return await self.status()
        reply = await self.start(*args, **params)
        if not reply.ok:
            return reply
        return await self.wait()

    def __repr__(self) -> str:
        return f"<AsyncOpHandle {self.name}>"


#: ``runner(async_function, args, kwargs, timeout)`` runs it to completion, blocking.
Runner = Callable[[Callable[..., Awaitable[Any]], tuple[Any, ...], dict[str, Any], Any], Any]


class SyncOpAccessor:
    """Blocking twin of :class:`AsyncOpAccessor` for plain (non-async) scripts."""

    def __init__(self, accessor: AsyncOpAccessor, runner: Runner) -> None:
        self._async = accessor
        self._runner = runner

    def list(self, refresh: bool = False) -> dict[str, OpInfo]:
        """The device's operations by KATCP name (``?op-list``, cached)."""
        return self._runner(self._async.list, (refresh,), {}, self._async.timeout)

    def __getitem__(self, name: str) -> SyncOpHandle:
        return SyncOpHandle(self._async[name], self._runner)

    def __getattr__(self, attr: str) -> SyncOpHandle:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return self[attr]

    def __dir__(self) -> builtins.list[str]:
        return dir(self._async)


class SyncOpHandle:
    """Blocking twin of :class:`AsyncOpHandle`: same methods, returning :class:`OpReply`."""

    def __init__(self, handle: AsyncOpHandle, runner: Runner) -> None:
        self._handle = handle
        self._runner = runner
        self.name = handle.name

    def _run(self, method: Callable[..., Awaitable[OpReply]], *args: Any, **kw: Any) -> OpReply:
        return self._runner(method, args, kw, None)

    def start(self, *args: Any, **params: Any) -> OpReply:
        """Start the operation; `params` by name (or `args` in order)."""
        return self._run(self._handle.start, *args, **params)

    def status(self) -> OpReply:
        """The latest session (status idle when the operation never ran)."""
        return self._run(self._handle.status)

    def wait(self, timeout: float | None = None) -> OpReply:
        """Wait until the operation is not running; :data:`TIMEOUT` if `timeout` ran out."""
        return self._run(self._handle.wait, timeout)

    def stop(self) -> OpReply:
        """Ask a process to stop."""
        return self._run(self._handle.stop)

    def abort(self) -> OpReply:
        """Abort a task."""
        return self._run(self._handle.abort)

    def __call__(self, *args: Any, **params: Any) -> OpReply:
        """A task: start it and wait for it to end. A process: its status."""
        return self._run(self._handle.__call__, *args, **params)

    def __repr__(self) -> str:
        return f"<SyncOpHandle {self.name}>"


def _asyncio_runner(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any], _: Any
) -> Any:
    async def main() -> Any:
        return await fn(*args, **kwargs)

    return asyncio.run(main())


def op_accessor(
    caller: RequestCaller,
    *,
    device: str = "",
    timeout: float | None = 5.0,
    sync: bool | None = None,
    runner: Runner | None = None,
) -> AsyncOpAccessor | SyncOpAccessor:
    """The operations accessor over `caller` (how resources build their own ``op``).

    Parameters
    ----------
    caller
        Sends the requests (see :class:`RequestCaller`).
    device
        The device's name or address, for messages.
    timeout
        Seconds to wait for each reply (``wait`` adds its own timeout).
    sync
        True: a blocking accessor; False: an async one; None: blocking when `runner` is given.
    runner
        Runs the async methods to completion for the blocking accessor (default: each call
        in a new event loop, so the device connection must run in a loop thread of its own).
    """
    accessor = AsyncOpAccessor(caller, timeout, device)
    if sync is False or (sync is None and runner is None):
        return accessor
    return SyncOpAccessor(accessor, runner if runner is not None else _asyncio_runner)


def ops_for(
    target: Any, *, sync: bool | None = None, timeout: float | None = 5.0
) -> AsyncOpAccessor | SyncOpAccessor:
    """The operations accessor for a client or resource.

    Parameters
    ----------
    target
        A ``KATCPClientResource`` (async accessor), a thread-safe resource wrapper such as
        :func:`~katcpx.resource.threadsafe_resource` returns (blocking accessor), or a katcpx
        ``AsyncClient``/``BlockingClient`` (async accessor; blocking with ``sync=True``,
        which needs the client to run its own loop thread). Anything with an
        ``op_accessor(sync=, timeout=)`` method builds its own accessor.
    sync
        Force a blocking (True) or async (False) accessor where both make sense.
    timeout
        Seconds to wait for each reply (``wait`` adds its own timeout).

    Returns
    -------
    AsyncOpAccessor or SyncOpAccessor

    Raises
    ------
    TypeError
        If `target` is neither a katcpx client nor a resource.
    """
    build = getattr(target, "op_accessor", None)
    if callable(build):
        return build(sync=sync, timeout=timeout)
    if callable(getattr(target, "call", None)):
        device = str(getattr(target, "bind_address_string", ""))
        return op_accessor(_client_caller(target), device=device, timeout=timeout, sync=bool(sync))
    raise TypeError(f"ops_for() needs a katcpx client or resource, not {target!r}")
