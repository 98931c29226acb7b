"""Coalescing of a server's automatic ``#interface-changed`` with the device's own (no I/O).

katcpx sends ``#interface-changed sensor <name> added`` (and the like) itself when device
code adds or removes a sensor or a request on a running server (spec rev 5.1 section
4.2.1 lets a device send it). katcp-python sends none: every katcp-python device sends its
own right after the change (``add_sensor(...); mass_inform(Message.inform(
"interface-changed", ...))``). Both reaching clients would make inspecting clients and
resources re-sync twice. So the automatic inform waits for the end of the loop turn (when
the change was made on the loop; :attr:`InterfaceChanges.GRACE` seconds when it came from
another thread, whose next call is not bound to a loop turn) and is dropped when the device
sent an ``#interface-changed`` of its own meanwhile (either re-syncs an inspecting
client's whole interface).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from ..crossing import LoopBinding
from ..message import Message

__all__ = ["InterfaceChanges"]


class InterfaceChanges:
    """The automatic ``#interface-changed`` informs of one server still to be sent.

    Parameters
    ----------
    binding
        The server's loop binding: informs are sent on its loop.

    Notes
    -----
    Thread-safe: device code changes its interface from any thread. The device's own inform
    cancels the pending automatic ones at once, in the caller's thread, so the order in
    which the two cross to the loop does not matter.
    """

    #: Seconds an automatic inform for a change made off the loop waits for the device's own.
    GRACE: float = 0.05

    def __init__(self, binding: LoopBinding) -> None:
        self._binding = binding
        self._lock = threading.Lock()
        self._pending: list[Message] = []

    def automatic(self, msg: Message, send: Callable[[Message], None]) -> None:
        """Send `msg` (an automatic ``#interface-changed``) with `send` at the end of the
        loop turn, unless :meth:`device_sent` is called before then."""
        with self._lock:
            first = not self._pending
            self._pending.append(msg)
        if not first:
            return
        delay = 0.0 if self._binding.on_loop() else self.GRACE
        if not self._binding.call_here_or_soon(self._at_turn_end, send, delay):
            self.device_sent()  # no loop (the server stopped): nobody to tell

    def device_sent(self) -> None:
        """The device sent an ``#interface-changed`` itself: drop the automatic ones."""
        with self._lock:
            self._pending.clear()

    def _at_turn_end(self, send: Callable[[Message], None], delay: float) -> None:
        # call_soon runs after the callbacks already ready: the rest of this turn's work
        # (say the device's own inform crossing in the same batch) comes first.
        loop = asyncio.get_running_loop()
        if delay:
            loop.call_later(delay, self._flush, send)
        else:
            loop.call_soon(self._flush, send)

    def _flush(self, send: Callable[[Message], None]) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for msg in pending:
            send(msg)
