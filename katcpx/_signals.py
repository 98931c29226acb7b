"""SIGINT and SIGTERM as an asyncio event, for the long-running command-line tools."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["stop_on_signals"]


@contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set `stop` on SIGINT or SIGTERM while in the block (on the running loop).

    Where handlers cannot be installed (not the main thread, or Windows) the block runs
    without them.
    """
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or Windows
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
