"""Long-running operations (OCS-style tasks and processes) over plain KATCP.

Server side: declare ``@task`` / ``@process`` coroutines on an
``OperationsMixin``-enabled device server. Client side: :func:`ops_for` gives an accessor
whose attributes drive each operation and return readable :class:`OpReply` objects.
See ``docs/operations.md``.
"""

from .client import (
    ERROR,
    OK,
    TIMEOUT,
    AsyncOpAccessor,
    AsyncOpHandle,
    OpInfo,
    OpReply,
    ResponseCode,
    SyncOpAccessor,
    SyncOpHandle,
    ops_for,
)
from .server import OpDef, OperationsMixin, process, task
from .session import OpKind, OpSession, OpStatus

__all__ = [
    "ERROR",
    "OK",
    "TIMEOUT",
    "AsyncOpAccessor",
    "AsyncOpHandle",
    "OpDef",
    "OpInfo",
    "OpKind",
    "OpReply",
    "OpSession",
    "OpStatus",
    "OperationsMixin",
    "ResponseCode",
    "SyncOpAccessor",
    "SyncOpHandle",
    "ops_for",
    "process",
    "task",
]
