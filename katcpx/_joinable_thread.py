"""A thread whose :meth:`~JoinableThread.join` survives Ctrl-C.

On CPython before 3.12 (and 3.11 here), a ``KeyboardInterrupt`` raised while
``threading.Thread.join()`` waits releases the thread's own state lock and marks the thread
as stopped although it still runs (the clean-up of bpo-45274 assumes the lock was taken by
the waiter). From then on ``join()`` returns at once and ``is_alive()`` says False, and the
interpreter no longer waits for the thread at exit. That broke the shutdown the README
shows (``join()``; on ``KeyboardInterrupt`` ``stop(); join()``): the second ``join()``
returned before the server had sent ``#disconnect`` to its clients.

:class:`JoinableThread` waits on an :class:`threading.Event` set as its ``run()`` ends; an
interrupted ``Event.wait()`` leaves the event intact, so a later ``join()`` waits properly.
Every thread katcpx starts and lets users join (servers, clients, handler threads, the
IOLoop manager) is one.
"""

from __future__ import annotations

import threading

__all__ = ["JoinableThread"]


class JoinableThread(threading.Thread):
    """A :class:`threading.Thread` whose ``join`` may be interrupted and called again.

    Same constructor and API as :class:`threading.Thread`.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._run_ended = threading.Event()

    def run(self) -> None:
        """Run the target; the end is recorded for :meth:`join` whatever happens."""
        try:
            super().run()
        finally:
            self._run_ended.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait at most `timeout` seconds (None: for ever) for the thread to end.

        A ``KeyboardInterrupt`` (or any exception a signal handler raises) while waiting
        propagates and leaves the thread's state alone: a later call waits again.

        Raises
        ------
        RuntimeError
            As :meth:`threading.Thread.join`: the thread was not started, or it joins itself.
        """
        if self.ident is None or self is threading.current_thread():
            super().join(timeout)  # raises the usual RuntimeError
            return
        if not self._run_ended.wait(timeout):
            return
        # Only the last few instructions of the thread remain: the interrupt-prone wait for
        # its state lock is then a matter of microseconds.
        super().join()
