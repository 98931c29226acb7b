"""Error texts of katcpx-web for people: what went wrong, where, and the option that fixes it."""

from __future__ import annotations

import errno
import socket

__all__ = ["listen_error"]


def listen_error(exc: OSError, host: str, port: int) -> str:
    """The message for an `exc` raised while starting to listen on ``host:port``."""
    where = f"{host or '*'}:{port}"
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: {reason}: another program (perhaps another "
            f"katcpx-web) is listening there; choose a free port with --port N, or "
            f"--port 0 for any free port"
        )
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: {reason}: ports below 1024 need privileges; use --port"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: {reason}: no such local address; check --host"
    return f"cannot listen on {where}: {reason}"
