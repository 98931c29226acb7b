"""Long-running operations (OCS-style tasks and processes) over plain KATCP.

Server side: declare ``@task`` / ``@process`` coroutines on an
``OperationsMixin``-enabled device server. Client side: :func:`ops_for` gives an accessor
whose attributes drive each operation and return readable :class:`OpReply` objects;
resources build theirs with :func:`op_accessor` over their own request method.
See ``docs/operations.md``.
"""

from ._client import (
    ERROR,
    OK,
    TIMEOUT,
    AsyncOpAccessor,
    AsyncOpHandle,
    OpInfo,
    OpReply,
    RequestCaller,
    ResponseCode,
    SyncOpAccessor,
    SyncOpHandle,
    op_accessor,
    ops_for,
)
from ._opdef import OpDef, process, task
from ._server import OperationsMixin
from ._session import OpKind, OpSession, OpStatus

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
    "RequestCaller",
    "ResponseCode",
    "SyncOpAccessor",
    "SyncOpHandle",
    "op_accessor",
    "ops_for",
    "process",
    "task",
]
