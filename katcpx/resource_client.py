"""katcp-python's ``katcp.resource_client`` layout (a facade).

The resource, container, group and thread-safe wrappers are :mod:`katcpx.resource`'s; the
inspecting-client building blocks are in :mod:`katcpx.inspecting`; the
future helpers in :mod:`katcpx.asyncutil`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future
from functools import partial

from tornado.concurrent import Future as tornado_Future
from tornado.gen import Return

from .asyncutil import (
    AsyncCallbackEvent,
    AsyncEvent,
    AsyncState,
    LatencyTimer,
    log_future_exceptions,
    steal_docstring_from,
    transform_future,
    until_any,
    until_some,
)
from .inspecting import (
    KATCPClientResourceRequest,
    KATCPClientResourceSensorsManager,
    ReplyWrappedInspectingClientAsync,
    list_sensors,
    monitor_resource_sync_state,
)
from .message import Message
from .resource import (
    AttrDict,
    AttrMappingProxy,
    ClientGroup,
    DefaultAttrDict,
    GroupRequest,
    GroupResults,
    IOLoopThreadWrapper,
    KATCPClientResource,
    KATCPClientResourceContainer,
    KATCPReply,
    KATCPSensorError,
    MappingProxy,
    ThreadSafeKATCPClientGroupWrapper,
    ThreadSafeKATCPClientResourceRequestWrapper,
    ThreadSafeKATCPClientResourceWrapper,
    ThreadSafeKATCPSensorWrapper,
    ThreadSafeMethodAttrWrapper,
)

#: katcp-python ran on Python 2 as well; katcpx does not.
PY2 = False
log = logging.getLogger("katcp.resource")

__all__ = [
    "AsyncCallbackEvent",
    "AsyncEvent",
    "AsyncState",
    "AttrDict",
    "AttrMappingProxy",
    "ClientGroup",
    "DefaultAttrDict",
    "Future",
    "GroupRequest",
    "GroupResults",
    "IOLoopThreadWrapper",
    "KATCPClientResource",
    "KATCPClientResourceContainer",
    "KATCPClientResourceRequest",
    "KATCPClientResourceSensorsManager",
    "KATCPReply",
    "KATCPSensorError",
    "LatencyTimer",
    "Mapping",
    "MappingProxy",
    "Message",
    "PY2",
    "ReplyWrappedInspectingClientAsync",
    "Return",
    "ThreadSafeKATCPClientGroupWrapper",
    "ThreadSafeKATCPClientResourceRequestWrapper",
    "ThreadSafeKATCPClientResourceWrapper",
    "ThreadSafeKATCPSensorWrapper",
    "ThreadSafeMethodAttrWrapper",
    "list_sensors",
    "log",
    "log_future_exceptions",
    "monitor_resource_sync_state",
    "partial",
    "steal_docstring_from",
    "tornado_Future",
    "transform_future",
    "until_any",
    "until_some",
]
