"""katcp-python's ``DeviceClient``: protocol detection, sending and message dispatch.

The connection life cycle (loop, connect, reconnect, start, stop, waits) lives in
:mod:`katcpx.client._base` and :mod:`katcpx.client._link`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import (
    KatcpClientDisconnected,
    KatcpSyntaxError,
    KatcpVersionError,
    MessageTooLong,
    NotARequestError,
)
from ..flags import ProtocolFlags
from ..message import Message
from ..transport import KatcpProtocol
from ._base import ClientBase
from ._handlers import Handler, collect_handlers
from ._link import log

if TYPE_CHECKING:
    from collections.abc import Awaitable

__all__ = ["DeviceClient", "KatcpClientDisconnected", "KatcpVersionError", "log"]

_REQUEST = Message.REQUEST
_REPLY = Message.REPLY
_INFORM = Message.INFORM
#: Largest message id; ids wrap back to 1 after it (the spec allows 1 .. 2**31 - 1).
_MAX_MID = 2**31 - 1


class DeviceClient(ClientBase):
    """Device client proxy.

    Subclasses implement ``reply_*``, ``inform_*`` and ``request_*`` methods to act on
    messages from the server, and ``unhandled_inform``, ``unhandled_reply`` and
    ``unhandled_request`` as fallbacks. Requests are sent with :meth:`send_request` or
    :meth:`request`.

    Parameters
    ----------
    host
        Host to connect to (empty means ``0.0.0.0``, as in katcp-python).
    port
        Port to connect to.
    tb_limit
        Maximum number of stack frames logged when a handler raises.
    logger
        Logger to log to.
    auto_reconnect
        Whether to reconnect when the connection fails or drops.

    Notes
    -----
    Reconnection uses exponential backoff with jitter: the n-th consecutive failed attempt
    waits ``auto_reconnect_delay * 2**(n-1)``, capped at ``auto_reconnect_max_delay`` and
    reduced by up to ``auto_reconnect_jitter`` of itself at random. ``max_reconnect_attempts``
    (None: no limit) bounds consecutive failures before the client gives up and stops.

    Unlike katcp-python, the thread-safe entry points (:meth:`send_message`, :meth:`request`,
    :meth:`disconnect` and the request methods of subclasses) are always thread-safe;
    :meth:`enable_thread_safety` is kept for compatibility and only records the request.
    """

    _request_handlers: ClassVar[dict[str, Handler]]
    _inform_handlers: ClassVar[dict[str, Handler]]
    _reply_handlers: ClassVar[dict[str, Handler]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        collect_handlers(cls)

    # -- protocol --------------------------------------------------------------------------

    def convert_seconds(self, time_seconds: float) -> float:
        """Convert a time in seconds to the device timestamp units.

        KATCP v4 and earlier specified all timestamps in milliseconds; since v5 they are in
        seconds. Before v4 the value is truncated to a whole millisecond. Before the server's
        version is known, v5 (seconds) is assumed.
        """
        flags = self._protocol_flags
        if flags is None or flags.major >= 5:
            return time_seconds
        device_time = time_seconds * 1000
        if flags.major < 4:
            return int(device_time)
        return device_time

    def _next_id(self) -> bytes:
        """Return the next message id as bytes."""
        return b"%d" % ((next(self._msg_ids) - 1) % _MAX_MID + 1)

    def preset_protocol_flags(self, protocol_flags: ProtocolFlags) -> None:
        """Preset server protocol flags.

        Sets the assumed server protocol flags and disables automatic server version
        detection.

        Parameters
        ----------
        protocol_flags
            The flags to assume.
        """
        self._static_protocol_configuration = True
        self._static_protocol_flags = protocol_flags
        self.protocol_flags = protocol_flags

    def inform_version_connect(self, msg: Message) -> None:
        """Process a #version-connect message (KATCP v5: protocol version and flags)."""
        if not msg.arguments:
            return
        if len(msg.arguments) < 2:
            if msg.arguments[0] == b"katcp-protocol":
                # No version at all: as unusable as a malformed one (spec 5.1 section 4.2).
                self._protocol_unusable(
                    "#version-connect katcp-protocol has no version: unusable "
                    "(spec rev 5.1 section 4.2)"
                )
            return
        name = msg.arguments[0].decode("utf-8", "replace")
        self.versions[name] = tuple(a.decode("utf-8", "replace") for a in msg.arguments[1:])
        if name == "katcp-protocol":
            try:
                flags = ProtocolFlags.parse_version(msg.arguments[1])
            except ValueError as exc:
                # The version decides timestamps' units and the strategies: guessing it
                # would misread the server. katcp-python goes on with major None instead.
                self._protocol_unusable(
                    f"#version-connect katcp-protocol {self.versions[name][0]!r} is "
                    f"unusable: {exc} (spec rev 5.1 section 4.2)"
                )
                return
            self._set_protocol_from_inform(flags, msg)

    def inform_version(self, msg: Message) -> None:
        """Handle katcp v4 and below version inform."""
        if msg.arguments:
            self.versions["version"] = tuple(a.decode("utf-8", "replace") for a in msg.arguments)
        self._set_v4_protocol(msg)

    def inform_build_state(self, msg: Message) -> None:
        """Handle katcp v4 and below build-state inform."""
        if msg.arguments:
            self.versions["build-state"] = tuple(
                a.decode("utf-8", "replace") for a in msg.arguments
            )
        self._set_v4_protocol(msg)

    def _set_v4_protocol(self, inform: Message) -> None:
        # Only a connection that has not announced v5 is taken as v4: KATCP v4 has no way to
        # announce flags, so none are assumed.
        if not self._protocol_seen:
            self._set_protocol_from_inform(ProtocolFlags(4, 0, ""), inform)

    def _set_protocol_from_inform(self, flags: ProtocolFlags, inform: Message) -> None:
        if self._static_protocol_configuration:
            if flags != self._protocol_flags:
                self._logger.warning(
                    "Ignoring protocol %s announced by %s (%s): static configuration is %s",
                    flags,
                    self.bind_address_string,
                    inform,
                    self._protocol_flags,
                )
            return
        if self._protocol_seen and flags != self._protocol_flags:
            self._logger.warning(
                "Server %s changed its protocol from %s to %s within one connection",
                self.bind_address_string,
                self._protocol_flags,
                flags,
            )
        self._protocol_seen = True
        self.protocol_error = None
        self.protocol_flags = flags

    # -- sending ---------------------------------------------------------------------------

    def request(self, msg: Message, use_mid: bool | None = None) -> bytes | None:
        """Send a request message, with automatic message ID assignment.

        Parameters
        ----------
        msg
            The request message.
        use_mid
            Whether to give the message an id. None: if the server supports ids.

        Returns
        -------
        mid : bytes or None
            The message id; when no id is used on the wire, a client-internal id.

        Raises
        ------
        KatcpVersionError
            If `msg` carries an id and the server does not support message ids.
        """
        # From any thread: the id comes from an atomic counter and send_message hands the
        # message to the loop without waiting (katcp-python's request is thread-safe too).
        mid = self._get_mid_and_update_msg(msg, use_mid)
        self.send_request(msg)
        return mid

    def _get_mid_and_update_msg(self, msg: Message, use_mid: bool | None) -> bytes:
        if msg.mid is not None:
            return msg.mid
        if use_mid is None:
            use_mid = self._server_supports_ids
        mid = self._next_id()
        if use_mid:
            msg.mid = mid
        return mid

    def send_request(self, msg: Message) -> None:
        """Send a request message.

        Parameters
        ----------
        msg
            The request message to send.
        """
        if msg.mtype != _REQUEST:  # katcp-python asserts: NotARequestError is an AssertionError
            raise NotARequestError(f"send_request() sends requests only, not {msg}")
        if msg.mid is not None and not self._server_supports_ids:
            raise KatcpVersionError("Message IDs not supported by server")
        self.send_message(msg)

    def send_message(self, msg: Message) -> None:
        """Send any kind of message.

        Parameters
        ----------
        msg
            The message to send.

        Raises
        ------
        KatcpClientDisconnected
            If the client is not connected (on the client's loop thread only).

        Notes
        -----
        From any other thread the message is handed to the loop without waiting, as
        katcp-python's thread-safe clients do, and never raises: a message the client cannot
        send (not connected, not running, stopped) is dropped with a warning.
        """
        if not self._binding.on_loop():
            if not self._binding.call(self._send_on_loop, msg):  # not running
                self._drop(msg)
            return None
        conn = self._conn
        if conn is None:
            raise KatcpClientDisconnected(f"Not connected to device {self.bind_address_string}")
        if self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug("Sending to %s: %r", self.bind_address_string, bytes(msg))
        conn.send_message(msg)

    def _drop(self, msg: Message) -> None:
        self._logger.warning("Dropped %s: not connected to %s", msg, self.bind_address_string)

    def _send_on_loop(self, msg: Message) -> None:
        """Send a message handed over from another thread; the connection may be gone."""
        conn = self._conn
        if conn is None:
            self._drop(msg)
            return
        if self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug("Sending to %s: %r", self.bind_address_string, bytes(msg))
        conn.send_message(msg)

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` to the connection as it is (for tests of a server's parser).

        Raises
        ------
        KatcpClientDisconnected
            If the client is not connected.
        """
        if not self._binding.on_loop():
            return self._run_in_loop(self.send_raw, data)
        conn = self._conn
        if conn is None:
            raise KatcpClientDisconnected(f"Not connected to device {self.bind_address_string}")
        conn.write(data)

    # -- receiving -------------------------------------------------------------------------

    def _on_items(self, conn: KatcpProtocol, items: list[Any]) -> None:
        """Dispatch one batch of parsed messages (and parse errors) from `conn`."""
        handle = self.handle_message
        transport = conn.transport
        for item in items:
            if transport is None or transport.is_closing():
                return  # closed by a handler: the rest of the batch is moot
            if type(item) is Message:
                try:
                    result = handle(item)
                except Exception:
                    self._log_handler_error(item)
                    continue
                if result is not None and inspect.isawaitable(result):
                    self._track(result, item)
            elif isinstance(item, MessageTooLong):
                self._logger.error("Closing connection to %s: %s", self.bind_address_string, item)
                conn.close()
                return
            elif isinstance(item, KatcpSyntaxError):
                self._logger.error("BAD MESSAGE from %s: %s", self.bind_address_string, item)
            else:  # pragma: no cover - transport contract
                self._logger.error("Unexpected item from transport: %r", item)

    def _log_handler_error(self, msg: Message) -> None:
        """Log the exception being handled, raised while handling `msg`."""
        self._logger.exception(
            "Unhandled exception in handle_message() from %s for message %s",
            self.bind_address_string,
            msg,
        )

    def _track(self, awaitable: Awaitable[Any], msg: Message) -> None:
        # Handlers returning awaitables run as tasks; reading carries on meanwhile.
        task = asyncio.ensure_future(awaitable)

        def done(task: asyncio.Future[Any]) -> None:
            if not task.cancelled() and task.exception() is not None:
                self._logger.error("Handler for %s failed", msg, exc_info=task.exception())

        task.add_done_callback(done)

    def _format_exc(self) -> str:
        return "".join(traceback.format_exc(limit=self._tb_limit))

    def handle_message(self, msg: Message) -> Any:
        """Handle a message from the server.

        Parameters
        ----------
        msg
            The message to dispatch to the handler methods.
        """
        if self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug("received from %s: %s", self.bind_address_string, msg)
        mtype = msg.mtype
        if mtype == _REPLY:
            return self.handle_reply(msg)
        if mtype == _INFORM:
            return self.handle_inform(msg)
        if mtype == _REQUEST:
            return self.handle_request(msg)
        self._logger.error("Unexpected message type from server [%s].", msg)
        return None

    def handle_inform(self, msg: Message) -> Any:
        """Dispatch an inform message to the appropriate method.

        Parameters
        ----------
        msg
            The inform message to dispatch.
        """
        if msg.name == "disconnect":
            self.note_disconnect_reason(msg)
        method = self._inform_handlers.get(msg.name, type(self).unhandled_inform)
        try:
            return method(self, msg)
        except Exception:
            self._logger.error("Inform %s FAIL: %s", msg.name, self._format_exc())
            return None

    def handle_reply(self, msg: Message) -> Any:
        """Dispatch a reply message to the appropriate method.

        Parameters
        ----------
        msg
            The reply message to dispatch.
        """
        method = self._reply_handlers.get(msg.name, type(self).unhandled_reply)
        try:
            return method(self, msg)
        except Exception:
            self._logger.error("Reply %s FAIL: %s", msg.name, self._format_exc())
            return None

    def handle_request(self, msg: Message) -> Any:
        """Dispatch a request message to the appropriate method.

        A handler returning a reply :class:`Message` has it sent with the request's id.

        Parameters
        ----------
        msg
            The request message to dispatch.
        """
        method = self._request_handlers.get(msg.name, type(self).unhandled_request)
        try:
            reply = method(self, msg)
            if isinstance(reply, Message):
                if reply.mtype != _REPLY or reply.name != msg.name:
                    raise ValueError(f"handler for {msg.name} returned {reply!r}, not its reply")
                reply.mid = msg.mid
                self.send_message(reply)
                return None
            return reply
        except Exception:
            self._logger.error("Request %s FAIL: %s", msg.name, self._format_exc())
            return None

    def unhandled_inform(self, msg: Message) -> None:
        """Fallback method for inform messages without a registered handler.

        Parameters
        ----------
        msg
            The inform message that wasn't processed by any handlers.
        """

    def unhandled_reply(self, msg: Message) -> None:
        """Fallback method for reply messages without a registered handler.

        A reply no request was waiting for (unknown message id, no request of that name
        outstanding, or the late reply of a request that timed out) is logged at WARNING,
        naming the reply and the connection: spec rev 5.1 section 2 asks clients to pass
        unexpected replies on to logging. katcp-python 0.9.3 drops them silently.
        Subclasses override this to handle such replies themselves.

        Parameters
        ----------
        msg
            The reply message that wasn't processed by any handlers.
        """
        mid = f"[{msg.mid.decode('ascii', 'replace')}]" if msg.mid is not None else ""
        code = msg.arguments[0].decode("ascii", "replace") if msg.arguments else ""
        self._logger.warning(
            "Unexpected reply !%s%s %r from %s: no request outstanding for it "
            "(spec rev 5.1 section 2)",
            msg.name,
            mid,
            code[:20],
            self.bind_address_string,
        )

    def unhandled_request(self, msg: Message) -> None:
        """Fallback method for requests without a registered handler.

        Parameters
        ----------
        msg
            The request message that wasn't processed by any handlers.
        """


collect_handlers(DeviceClient)
