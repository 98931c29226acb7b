"""Server side of operations: :class:`OperationsMixin` runs the declared operations.

Each operation (an :class:`~katcpx.ops.OpDef`) becomes plain KATCP requests
(``?<op>-start``, ``-status``, ``-wait`` and ``-stop`` or ``-abort``) generated when the
server class is created, so they show in ``?help`` like hand-written ones. See
``docs/operations.md`` for the wire format.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..codec import format_timestamp, show_argument
from ..crossing import LoopBinding
from ..errors import FailReply
from ..kattypes import concurrent_reply
from ..message import Message
from ..sensor import Sensor
from ..server import ClientRequestConnection, DeviceServerBase
from ..server.metaclass import prepare_handler
from ._opdef import OpDef, jsonable, outcome, to_json
from ._session import OpKind, OpSession, OpStatus, idle_session

__all__ = ["OperationsMixin"]

log = logging.getLogger("katcp.ops")


@dataclass
class _OpState:
    """Per-server state of one operation."""

    op: OpDef
    status_sensor: Sensor
    session_sensor: Sensor
    session: OpSession | None = None
    runner: asyncio.Task[None] | None = None
    aborted: bool = False
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


class OperationsMixin:
    """Adds :func:`task` and :func:`process` operations to a device server.

    Put it *before* the server class: ``class Antenna(OperationsMixin, DeviceServer)``.
    For every operation ``op`` the class gets the requests ``?op-start``, ``?op-status``,
    ``?op-wait`` and ``?op-stop`` (processes) or ``?op-abort`` (tasks); the instance gets
    the sensors ``op.<op>.status`` (discrete: idle, starting, running, stopping, done)
    and ``op.<op>.session`` (the session as JSON), and sends ``#op-message`` informs to all
    clients. ``?op-list`` describes every operation.

    Operations run on the server's event loop, alongside other requests.
    """

    #: Operations of the class, by KATCP name (built when the class is created).
    _op_defs: ClassVar[dict[str, OpDef]] = {}
    #: Messages kept per session.
    OP_MAX_MESSAGES: ClassVar[int] = 100
    #: Seconds :meth:`start_op` & co. wait for the loop when called from another thread.
    OP_CALL_TIMEOUT: ClassVar[float] = 5.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Runs inside type.__new__, i.e. before DeviceMetaclass.__init__ collects the
        # request_* handlers, so the generated handlers are listed like written ones.
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        if DeviceServerBase in mro and mro.index(DeviceServerBase) < mro.index(OperationsMixin):
            raise TypeError(
                f"{cls.__name__}: put OperationsMixin before the server class in the bases"
            )
        defs: dict[str, OpDef] = {}
        for klass in reversed(mro):
            for value in vars(klass).values():
                if isinstance(value, OpDef):
                    defs[value.name] = value
        cls._op_defs = defs
        info = getattr(cls, "PROTOCOL_INFO", None)
        major = info.major if info is not None else 5
        own = {id(v) for v in vars(cls).values() if isinstance(v, OpDef)}
        for op in defs.values():
            for attr, handler in _make_handlers(op).items():
                if attr in vars(cls):  # a hand-written handler wins
                    continue
                # Ops of this class (new or redefined), and ops from plain mixin classes
                # that no OperationsMixin subclass has generated handlers for yet.
                if id(op) in own or not hasattr(cls, attr):
                    setattr(cls, attr, prepare_handler(handler, major))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._op_states: dict[str, _OpState] = {}
        self._op_counter = 0
        for name, op in self._op_defs.items():
            status = Sensor.discrete(
                f"op.{name}.status",
                f"Status of the {op.kind.value} {name}",
                params=[s.value for s in OpStatus],
                default=OpStatus.IDLE.value,
                initial_status=Sensor.NOMINAL,
            )
            session = Sensor.string(
                f"op.{name}.session",
                f"Latest session of the {op.kind.value} {name} (JSON)",
                default=to_json(idle_session(name, op.kind)),
                initial_status=Sensor.NOMINAL,
            )
            self._op_states[name] = _OpState(op, status, session)
            self.add_sensor(status)  # type: ignore[attr-defined]
            self.add_sensor(session)  # type: ignore[attr-defined]

    # -- public API (loop thread) -----------------------------------------------------------

    @property
    def operations(self) -> dict[str, OpDef]:
        """The operations of this server, by KATCP name."""
        return dict(self._op_defs)

    def op_session(self, name: str) -> OpSession | None:
        """The latest session of operation `name` (None if it never ran)."""
        return self._op_state(name).session

    def start_op(self, name: str, *args: Any, **kwargs: Any) -> OpSession:
        """Start operation `name` with Python values.

        Like :meth:`stop_op` and :meth:`abort_op` it may be called from any thread (e.g. a
        plain request handler in the server's handler thread); off the server's loop it
        blocks until the loop has done it.

        Raises
        ------
        FailReply
            If it is already running or the arguments do not fit its signature.
        """
        return self._op_on_loop(self._op_start_now, name, args, kwargs)

    def stop_op(self, name: str) -> OpSession:
        """Ask process `name` to stop; FailReply if it is a task or not running."""
        return self._op_on_loop(self._op_stop_now, name)

    def abort_op(self, name: str) -> OpSession:
        """Abort task `name` (cancels it); FailReply if it is a process or not running."""
        return self._op_on_loop(self._op_abort_now, name)

    # -- machinery --------------------------------------------------------------------------

    def _op_binding(self) -> LoopBinding:
        """The server's loop binding (the one way onto its loop from other threads)."""
        binding: LoopBinding = self.binding  # type: ignore[attr-defined]  # a DeviceServer's
        return binding

    def _op_on_loop(self, func: Callable[..., OpSession], *args: Any) -> OpSession:
        binding = self._op_binding()
        if not binding.bound:
            return func(*args)  # not running: there is no loop to hand it to
        return binding.call_and_wait(func, *args, timeout=self.OP_CALL_TIMEOUT)

    def _op_start_now(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> OpSession:
        state = self._op_state(name)
        try:
            bound = state.op.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise FailReply(f"Bad parameters for {name}: {exc}.") from None
        bound.apply_defaults()
        return self._op_launch(state, bound)

    def _op_stop_now(self, name: str) -> OpSession:
        state = self._op_state(name)
        if state.op.kind is not OpKind.PROCESS:
            raise FailReply(f'"{name}" is a task: abort it instead.')
        session = self._op_active(state)
        if session.status is not OpStatus.STOPPING:
            session.add_message("Stop requested.")
            session.request_stop()
            timeout = state.op.stop_timeout
            if timeout is not None:
                loop = asyncio.get_running_loop()
                state.timers.append(loop.call_later(timeout, self._op_force_stop, state, session))
        return session

    def _op_abort_now(self, name: str) -> OpSession:
        state = self._op_state(name)
        if state.op.kind is not OpKind.TASK:
            raise FailReply(f'"{name}" is a process: stop it instead.')
        session = self._op_active(state)
        if not state.aborted:
            state.aborted = True
            session.add_message("Abort requested.")
            session.request_stop()
            if state.runner is not None:
                state.runner.cancel()
        return session

    def _op_state(self, name: str) -> _OpState:
        try:
            return self._op_states[name]
        except KeyError:
            raise FailReply(f"Unknown operation {show_argument(name)}.") from None

    @staticmethod
    def _op_active(state: _OpState) -> OpSession:
        session = state.session
        if session is None or session.done:
            raise FailReply(f'No session of "{state.op.name}" is running.')
        return session

    def _op_launch(self, state: _OpState, bound: inspect.BoundArguments) -> OpSession:
        current = state.session
        if current is not None and not current.done:
            raise FailReply(
                f'Operation "{state.op.name}" is already {current.status.value} '
                f"(session {current.session_id})."
            )
        for timer in state.timers:
            timer.cancel()
        state.timers.clear()
        self._op_counter += 1
        params = {k: jsonable(v) for k, v in bound.arguments.items()}
        session = OpSession(
            self._op_counter,
            state.op.name,
            state.op.kind,
            params,
            on_change=lambda s: self._op_changed(state, s),
            on_message=self._op_message,
            max_messages=self.OP_MAX_MESSAGES,
            binding=self._op_binding(),
        )
        state.session = session
        state.aborted = False
        session.begin()
        runner = asyncio.get_running_loop().create_task(
            self._op_run(state, session, bound), name=f"op-{state.op.name}-{session.session_id}"
        )
        # A runner cancelled before its first step never enters _op_run's handlers.
        runner.add_done_callback(
            lambda _: session.finish(False, "Aborted." if state.aborted else "Cancelled.")
        )
        state.runner = runner
        return session

    async def _op_run(
        self, state: _OpState, session: OpSession, bound: inspect.BoundArguments
    ) -> None:
        op = state.op
        session.set_status(OpStatus.RUNNING)
        t0 = time.monotonic()
        try:
            result = await op.func(self, session, *bound.args, **bound.kwargs)
        except asyncio.CancelledError:
            if state.aborted:
                session.finish(False, f"Aborted after {time.monotonic() - t0:.3f} s.")
            elif session.stop_requested:
                session.finish(False, "Cancelled: did not stop within the stop timeout.")
            else:
                session.finish(False, "Cancelled (server shutting down).")
            return
        except Exception as exc:
            log.error("operation %s failed", op.name, exc_info=True)
            # The class name only, as the server's fail replies (no module path to clients).
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            session.finish(False, f"Error: {text}")
            return
        success, message = outcome(result)
        session.finish(success, message)

    def _op_force_stop(self, state: _OpState, session: OpSession) -> None:
        if state.session is session and not session.done and state.runner is not None:
            session.add_message(f"Still running {state.op.stop_timeout} s after stop: cancelling.")
            state.runner.cancel()

    def _op_changed(self, state: _OpState, session: OpSession) -> None:
        if state.session is not session:
            return
        now = time.time()
        if session.done and session.success is False:
            sstatus = Sensor.ERROR
        elif session.degraded:
            sstatus = Sensor.WARN
        else:
            sstatus = Sensor.NOMINAL
        if state.status_sensor.value() != session.status.value or (
            state.status_sensor.read().status != sstatus
        ):
            state.status_sensor.set(now, sstatus, session.status.value)
        state.session_sensor.set(now, sstatus, to_json(session.encoded()))

    def _op_message(self, session: OpSession, timestamp: float, text: str) -> None:
        # Like every inform timestamp: seconds from v5, milliseconds on a v4 server.
        major = self.PROTOCOL_INFO.major  # type: ignore[attr-defined]
        stamp = format_timestamp(timestamp, major)  # the codec's one timestamp rule
        self.mass_inform(  # type: ignore[attr-defined]
            Message.inform("op-message", session.op_name, session.session_id, stamp, text)
        )

    def _op_encoded(self, state: _OpState) -> dict[str, Any]:
        if state.session is None:
            return idle_session(state.op.name, state.op.kind)
        return state.session.encoded()

    def _on_uninstall(self) -> None:
        # Server stopping: cancel running operations rather than leave their tasks pending
        # on a loop that is about to stop. This is the server's internal hook, not the public
        # on_server_stop, so a device's override of that (even one without super()) cannot
        # leave operations running.
        for state in self._op_states.values():
            for timer in state.timers:
                timer.cancel()
            if state.runner is not None and not state.runner.done():
                state.runner.cancel()
        # The binding stays bound: the cancelled operations finish on this loop after this
        # hook, and their last messages must not be taken for hand-overs from other threads.
        super()._on_uninstall()  # type: ignore[misc]

    # -- requests ---------------------------------------------------------------------------

    async def _op_req_start(
        self, req: ClientRequestConnection, name: str, args: tuple[Any, ...]
    ) -> Message:
        state = self._op_state(name)
        # The unpacker leaves out trailing arguments that have Python defaults.
        bound = state.op.signature.bind(*args)
        bound.apply_defaults()
        session = self._op_launch(state, bound)
        return _reply(req, f'Started {state.op.kind.value} "{name}".', session.encoded())

    async def _op_req_status(self, req: ClientRequestConnection, name: str) -> Message:
        state = self._op_state(name)
        return _reply(req, _status_text(state), self._op_encoded(state))

    async def _op_req_wait(
        self, req: ClientRequestConnection, name: str, timeout: float | None
    ) -> Message:
        state = self._op_state(name)
        session = state.session
        if session is not None and not session.done:
            try:
                await asyncio.wait_for(session.until_done(), timeout)
            except asyncio.TimeoutError:
                return _reply(
                    req,
                    f'Timed out after {timeout} s: "{name}" is still {session.status.value}.',
                    session.encoded(),
                )
            return _reply(req, _status_text(state, session), session.encoded())
        return _reply(req, _status_text(state), self._op_encoded(state))

    async def _op_req_stop(self, req: ClientRequestConnection, name: str) -> Message:
        session = self.stop_op(name)
        return _reply(req, f'Requested stop on process "{name}".', session.encoded())

    async def _op_req_abort(self, req: ClientRequestConnection, name: str) -> Message:
        session = self.abort_op(name)
        return _reply(req, f'Requested abort on task "{name}".', session.encoded())

    def request_op_list(self, req: ClientRequestConnection, msg: Message) -> Message:
        """List the operations (tasks and processes) of this device.

        Parameters
        ----------
        name : str, optional
            Only this operation.

        Informs
        -------
        name, kind, status, params, description
            The operation's name, ``task`` or ``process``, its current status, its start
            parameters (JSON list of objects with ``name``, ``type``, ``required``,
            ``multiple`` and ``default``) and the first paragraph of its docstring.

        Returns
        -------
        success : {'ok', 'fail'}
        count : int
            Number of ``#op-list`` informs.
        """
        # A plain (req, msg) handler: the mixin is not built by DeviceMetaclass, so an
        # annotated one would never be prepared.
        name = msg.arguments[0].decode("utf-8", "replace") if msg.arguments else None
        if name is None:
            names = sorted(self._op_states)
        else:
            self._op_state(name)
            names = [name]
        for n in names:
            state = self._op_states[n]
            session = state.session
            req.inform(
                n,
                state.op.kind.value,
                OpStatus.IDLE.value if session is None else session.status.value,
                to_json(state.op.describe_params()),
                state.op.summary,
            )
        return req.make_reply("ok", len(names))


def _reply(req: ClientRequestConnection, text: str, session: dict[str, Any]) -> Message:
    return req.make_reply("ok", text, to_json(session))


def _status_text(state: _OpState, session: OpSession | None = None) -> str:
    session = session if session is not None else state.session
    name = state.op.name
    if session is None:
        return f'Operation "{name}" has not run yet.'
    if not session.done:
        return f'Operation "{name}" is {session.status.value} (session {session.session_id}).'
    outcome = "SUCCEEDED" if session.success else "FAILED"
    return f'Operation "{name}" is not running ({outcome}).'


def _make_handlers(op: OpDef) -> dict[str, Callable[..., Any]]:
    """The ``request_*`` methods for `op` (before ``prepare_handler``)."""
    attr = "request_" + op.name.replace("-", "_")
    name = op.name
    kind = op.kind.value
    handlers: dict[str, Callable[..., Any]] = {}

    async def start(self: OperationsMixin, req: ClientRequestConnection, *args: Any) -> Message:
        return await self._op_req_start(req, name, args)

    # Give the start handler the operation's typed parameters, so kattypes parses them.
    hints = op.hints()
    params = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("req", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    ]
    for p in op.signature.parameters.values():
        params.append(p.replace(annotation=hints.get(p.name, p.annotation)))
    start.__signature__ = inspect.Signature(params, return_annotation=Message)  # type: ignore[attr-defined]
    start.__annotations__ = {p.name: p.annotation for p in params[2:]} | {"return": Message}
    arglist = ", ".join(
        f"{d['name']} ({d['type']}" + (f", default {d['default']!r})" if "default" in d else ")")
        for d in op.describe_params()
    )
    start.__doc__ = (
        f'Start the {kind} "{name}": {op.summary}\n\n'
        f"Parameters: {arglist or 'none'}.\n"
        f"Replies ok <message> <session-json>; fails if it is already running."
    )
    handlers[f"{attr}_start"] = start

    async def status(self: OperationsMixin, req: ClientRequestConnection) -> Message:
        return await self._op_req_status(req, name)

    status.__doc__ = (
        f'Status of the {kind} "{name}".\n\nReplies ok <message> <session-json> (the latest '
        "session; status idle if it never ran)."
    )
    handlers[f"{attr}_status"] = status

    async def wait(
        self: OperationsMixin, req: ClientRequestConnection, timeout: float | None = None
    ) -> Message:
        return await self._op_req_wait(req, name, timeout)

    wait.__doc__ = (
        f'Wait until the {kind} "{name}" is not running.\n\nParameters: timeout (float, '
        "seconds, optional: wait forever).\nReplies ok <message> <session-json>; the "
        "session's status says whether it ended (done) or the wait timed out."
    )
    handlers[f"{attr}_wait"] = concurrent_reply(wait)  # a long wait must not block the client

    if op.kind is OpKind.PROCESS:

        async def stop(self: OperationsMixin, req: ClientRequestConnection) -> Message:
            return await self._op_req_stop(req, name)

        stop.__doc__ = (
            f'Ask the process "{name}" to stop (it ends cleanly).\n\n'
            "Replies ok <message> <session-json>; fails if it is not running."
        )
        handlers[f"{attr}_stop"] = stop
    else:

        async def abort(self: OperationsMixin, req: ClientRequestConnection) -> Message:
            return await self._op_req_abort(req, name)

        abort.__doc__ = (
            f'Abort the task "{name}" (it is cancelled and ends failed).\n\n'
            "Replies ok <message> <session-json>; fails if it is not running."
        )
        handlers[f"{attr}_abort"] = abort
    for attr_name, handler in handlers.items():
        handler.__name__ = attr_name
        handler.__qualname__ = attr_name
    return handlers
