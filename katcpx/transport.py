"""One KATCP connection over an asyncio stream transport.

Servers and clients both use `KatcpProtocol`. It parses what arrives with a `StreamParser`
and hands each batch of messages (and syntax errors, in order) to its owner. What its owner
sends is coalesced: peers that write each message as it is made pay a system call per
message. The first message after the connection went quiet is written at once, so a lone
reply costs no extra loop iteration; the rest of a burst is queued and written with one
``send()`` on the next loop iteration, in order.

Tornado 6 runs on asyncio, so this serves tornado's IOLoop too (``IOLoop.asyncio_loop``).
All methods must be called on the connection's loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from .errors import KatcpSyntaxError
from .message import Message
from .parser import DEFAULT_MAX_MSG_SIZE, StreamParser

__all__ = [
    "KatcpProtocol",
    "DEFAULT_MAX_WRITE_BUFFER",
    "PARSE_SLICE_SECONDS",
    "RECV_BUFFER_SIZE",
    "format_address",
]

#: Default bound on output queued for a peer that is not reading (bytes).
DEFAULT_MAX_WRITE_BUFFER: Final = 16 * 1024 * 1024

#: Size of the receive buffer each connection reuses for every read; a bigger burst simply
#: takes several reads.
RECV_BUFFER_SIZE: Final = 64 * 1024

#: Seconds one connection may spend parsing received bytes per loop iteration. A read holds
#: up to :data:`RECV_BUFFER_SIZE` bytes: thousands of lines, and malformed ones cost many
#: times more to parse (and report) than valid ones, so parsing a whole read at once let
#: one client flooding bad lines delay every other client by a tenth of a second. The rest
#: of a read waits for the next loop iteration, with reading paused meanwhile.
PARSE_SLICE_SECONDS: Final = 0.002
# Bytes parsed between two looks at the clock (cut at the next end of line): adapted per
# connection so that a step takes about a quarter of the slice, as a malformed line costs
# up to 40 times what a valid one does (the first step after a switch may overrun).
_STEP_MIN: Final = 256
_STEP_MAX: Final = 16384
_STEP_SECONDS: Final = PARSE_SLICE_SECONDS / 4
_clock = time.perf_counter

_log = logging.getLogger("katcp.transport")

MessageBatchHandler = Callable[["KatcpProtocol", "list[Message | KatcpSyntaxError]"], None]
LostHandler = Callable[["KatcpProtocol", "Exception | None"], None]


def format_address(address: object) -> str:
    """Format a socket address as ``host:port`` (``[v6]:port`` for IPv6)."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if ":" in str(host):
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return str(address)


class KatcpProtocol(asyncio.BufferedProtocol):
    """Carries one KATCP peer: incoming bytes to messages, outgoing messages coalesced.

    Reads go into one buffer reused for the life of the connection (the
    :class:`asyncio.BufferedProtocol` interface). With a plain protocol asyncio allocates a
    fresh 256 KiB ``bytes`` for every read and shrinks it afterwards: an ``mmap``,
    ``mremap`` and ``munmap`` per read, which dominated system time under load.

    Parameters
    ----------
    on_messages
        Called as ``on_messages(protocol, items)`` for each received chunk that completes at
        least one line. `items` holds `Message` objects and, for malformed lines,
        `KatcpSyntaxError` objects (``MessageTooLong`` for over-long ones), in arrival order.
    on_connection_lost
        Called once as ``on_connection_lost(protocol, exc)`` when the connection closes,
        with the error or None for a clean close.
    on_connection_made
        Optional; called as ``on_connection_made(protocol)`` once the transport is up.
    max_msg_size
        Longest line accepted from the peer, in bytes.
    max_write_buffer
        Most bytes that may wait for a peer that is not reading. Past it the connection is
        aborted with a warning, so one stuck peer cannot exhaust the server's memory.
    on_overflow
        Optional; called as ``on_overflow(protocol)`` just before that abort.
    screen
        Optional; called as ``screen(protocol, data)`` with the first bytes received.
        Returning True drops them (the screen has closed the connection, say because a
        TLS client spoke to a plain port).
    on_output_full
        Optional; called as ``on_output_full(protocol, full)`` with True when more than
        `output_high_water` bytes of output wait for the peer, and with False once they
        fell below a quarter of it (asyncio's ``pause_writing``/``resume_writing``). A
        server stops handling that peer's requests meanwhile, so a peer that sends faster
        than it reads is slowed down rather than cut off at `max_write_buffer`.
    output_high_water
        Bytes of output (default an eighth of `max_write_buffer`) for `on_output_full`.

    Attributes
    ----------
    lost
        A future that resolves (with the error or None) once the connection has closed.
    """

    def __init__(
        self,
        on_messages: MessageBatchHandler,
        on_connection_lost: LostHandler,
        *,
        on_connection_made: Callable[[KatcpProtocol], None] | None = None,
        max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
        max_write_buffer: int = DEFAULT_MAX_WRITE_BUFFER,
        logger: logging.Logger | None = None,
        on_overflow: Callable[[KatcpProtocol], None] | None = None,
        screen: Callable[[KatcpProtocol, bytes], bool] | None = None,
        on_output_full: Callable[[KatcpProtocol, bool], None] | None = None,
        output_high_water: int | None = None,
    ) -> None:
        self._on_messages = on_messages
        self._on_connection_lost = on_connection_lost
        self._on_connection_made = on_connection_made
        self._on_overflow = on_overflow
        self._screen = screen
        self._on_output_full = on_output_full
        self._high_water = output_high_water or max(max_write_buffer // 8, 1)
        self.parser = StreamParser(max_msg_size)
        self.max_write_buffer = max_write_buffer
        self.logger = logger or _log
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        #: ``host:port`` of the peer, set when the connection is made.
        self.peer = "<unconnected>"
        self.closed = False
        self.batch_bytes = 0
        self._out: list[bytes] = []
        self._out_bytes = 0  # bytes in _out: what a flush would write
        self._flush_handle: asyncio.Handle | None = None
        self._recv_view = memoryview(bytearray(RECV_BUFFER_SIZE))
        # True once data arrived or a flush ran since the last direct write: the next
        # message may then go out at once instead of waiting a loop iteration.
        self._idle = True
        self._corked = False
        self._lost: asyncio.Future[Exception | None] | None = None
        self._lost_exc: Exception | None = None
        # Received bytes not parsed yet (see PARSE_SLICE_SECONDS), with the offset reached
        # in the first; reading is paused while there are any.
        self._unparsed: deque[bytes] = deque()
        self._unparsed_at = 0
        # Why reading is paused: the owner asked (pause_reading), or bytes wait unparsed.
        self._owner_paused = False
        self._parse_paused = False
        self._parse_scheduled = False
        self._parse_step = _STEP_MAX

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.peer = format_address(transport.get_extra_info("peername"))
        sock = transport.get_extra_info("socket")
        if self._on_output_full is not None:
            transport.set_write_buffer_limits(self._high_water, self._high_water // 4)
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio already sets this on TCP sockets; be explicit, latency matters here.
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - platform dependent
                pass
        if self._on_connection_made is not None:
            self._on_connection_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._recv_view

    def buffer_updated(self, nbytes: int) -> None:
        # One copy of just the received bytes: the parser keeps slices of it.
        self.data_received(self._recv_view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        if self._screen is not None:
            screen, self._screen = self._screen, None
            if screen(self, data):
                return
        self._idle = True
        if self._unparsed:  # keep the order behind what still waits (TLS may deliver more)
            self._unparsed.append(data)
            return
        self._parse(data, 0)

    def _parse(self, data: bytes, pos: int) -> None:
        """Parse `data` from `pos` on, handing each step's messages to the owner, until the
        time slice is used up; the rest waits for the next loop iteration."""
        now = _clock()
        deadline = now + PARSE_SLICE_SECONDS
        size = len(data)
        step = self._parse_step
        while pos < size:
            end = size if size - pos <= step else data.find(b"\n", pos + step) + 1
            if end <= 0:
                end = size
            chunk = data if pos == 0 and end == size else data[pos:end]
            pos = end
            # Bytes received since the previous batch, for the batch now given to
            # ``on_messages`` (lets a receiver bound what it queues in bytes, not only in
            # messages; a long line arrives over many reads).
            self.batch_bytes += len(chunk)
            items = self.parser.feed(chunk)
            if items:
                self._on_messages(self, items)
                self.batch_bytes = self.parser.buffered
            if self.closed:
                return
            began, now = now, _clock()
            took = now - began
            if len(chunk) >= step or took > _STEP_SECONDS:
                wanted = int(len(chunk) * _STEP_SECONDS / took) if took > 0 else _STEP_MAX
                step = self._parse_step = min(max(wanted, _STEP_MIN), _STEP_MAX)
            if pos < size and (self._owner_paused or now >= deadline):
                self._unparsed.appendleft(data)
                self._unparsed_at = pos
                self._set_parse_paused(True)
                return
        if self._unparsed:
            self._set_parse_paused(True)

    def _schedule_parse(self) -> None:
        if not self._parse_scheduled and self.loop is not None and not self.closed:
            self._parse_scheduled = True
            self.loop.call_soon(self._parse_more)

    def _parse_more(self) -> None:
        self._parse_scheduled = False
        if self.closed or self._owner_paused or not self._unparsed:
            return
        data = self._unparsed.popleft()
        pos, self._unparsed_at = self._unparsed_at, 0
        self._parse(data, pos)
        if not self._unparsed:
            self._set_parse_paused(False)
        elif not self._owner_paused:
            self._schedule_parse()

    def _set_parse_paused(self, paused: bool) -> None:
        if paused and not self._parse_paused:
            self._parse_paused = True
            if not self._owner_paused:
                if self.transport is not None:
                    self.transport.pause_reading()
                self._schedule_parse()
        elif not paused and self._parse_paused:
            self._parse_paused = False
            if not self._owner_paused:
                self._resume_transport()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._out.clear()
        self._out_bytes = 0
        self._unparsed.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        callback = self._on_connection_lost
        self._on_connection_lost = _ignore_lost
        self._lost_exc = exc
        try:
            callback(self, exc)
        finally:
            if self._lost is not None and not self._lost.done():
                self._lost.set_result(exc)

    @property
    def lost(self) -> asyncio.Future[Exception | None]:
        """Resolves (with the error or None) once the connection has closed (loop thread)."""
        if self._lost is None:
            loop = self.loop if self.loop is not None else asyncio.get_running_loop()
            self._lost = loop.create_future()
            if self.closed:
                self._lost.set_result(self._lost_exc)
        return self._lost

    # -- sending -------------------------------------------------------------------------

    def send_message(self, msg: Message) -> None:
        """Queue `msg`; it goes out with everything else queued in this loop iteration."""
        self.write(bytes(msg))

    def send_messages(self, msgs: list[Message]) -> None:
        """Queue several messages at once."""
        if msgs:
            self.write(b"".join([bytes(msg) for msg in msgs]))

    def write(self, data: bytes) -> None:
        """Queue raw wire bytes (complete lines)."""
        if self.closed:
            return
        if self._corked:
            self._out.append(data)
            self._out_bytes += len(data)
            return
        if self._idle and not self._out:
            transport = self.transport
            if transport is not None and transport.get_write_buffer_size() == 0:
                self._idle = False
                transport.write(data)
                return
        self._out.append(data)
        self._out_bytes += len(data)
        if self._flush_handle is None and self.loop is not None:
            self._flush_handle = self.loop.call_soon(self.flush)

    def cork(self) -> None:
        """Hold what is sent until :meth:`uncork` (which writes it in one ``send()``)."""
        self._corked = True

    def uncork(self) -> None:
        """Write what was held since :meth:`cork` now, in one ``send()``."""
        self._corked = False
        if self._out:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self.flush()

    def flush(self) -> None:
        """Write everything queued now, in one ``send()``."""
        self._flush_handle = None
        self._idle = True
        transport = self.transport
        if not self._out or transport is None or self.closed:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_bytes = 0
        if transport.is_closing():
            return
        transport.write(data)
        backlog = transport.get_write_buffer_size()
        if backlog > self.max_write_buffer:
            self.logger.warning(
                "Disconnecting %s: %d bytes of output queued, over the %d-byte limit "
                "(the peer is not reading)",
                self.peer,
                backlog,
                self.max_write_buffer,
            )
            if self._on_overflow is not None:
                self._on_overflow(self)
            self.abort()

    @property
    def held_output_high(self) -> bool:
        """Whether output held back (corked, or waiting for the loop iteration's flush) has
        reached the `on_output_full` mark: a sender that keeps the link corked for a batch
        stops the batch here, as the transport cannot pause it before the flush."""
        return self._out_bytes >= self._high_water

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued for the peer and not yet sent."""
        queued = sum(len(chunk) for chunk in self._out)
        if self.transport is not None and not self.closed:
            queued += self.transport.get_write_buffer_size()
        return queued

    # -- flow control and closing --------------------------------------------------------

    def pause_reading(self) -> None:
        """Stop reading from the peer (backpressure on a busy connection).

        Bytes already received and not parsed yet wait too.
        """
        if self._owner_paused:
            return
        self._owner_paused = True
        if self.transport is not None and not self.closed and not self._parse_paused:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume reading after `pause_reading` (first parsing what was left unparsed)."""
        if not self._owner_paused:
            return
        self._owner_paused = False
        if self._unparsed:
            self._schedule_parse()
        else:
            self._resume_transport()

    def _resume_transport(self) -> None:
        transport = self.transport
        if transport is not None and not self.closed and not transport.is_closing():
            transport.resume_reading()

    def pause_writing(self) -> None:
        """asyncio: more than the high-water mark of output is queued."""
        if self._on_output_full is not None and not self.closed:
            self._on_output_full(self, True)

    def resume_writing(self) -> None:
        """asyncio: the queued output fell below the low-water mark."""
        if self._on_output_full is not None and not self.closed:
            self._on_output_full(self, False)

    def close(self) -> None:
        """Send what is queued, then close."""
        if self.transport is None or self.closed:
            return
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        """Close at once, discarding queued output."""
        self._out.clear()
        self._out_bytes = 0
        if self.transport is not None:
            self.transport.abort()


def _ignore_lost(protocol: KatcpProtocol, exc: Exception | None) -> None:
    """Stands in for the lost-connection callback once it has run."""
