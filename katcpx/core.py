"""katcp-python's ``katcp.core`` layout: the same names, defined where katcpx keeps them.

A facade only (see docs/design.md, "katcp-python's module layout"): messages, parser and
flags come from the protocol core, the future helpers from :mod:`katcpx.asyncutil`, the
metaclass from :mod:`katcpx.server.metaclass`, the types from :mod:`katcpx.kattypes`.
Importing it imports tornado; ``import katcpx`` alone does not import this module.
"""

from __future__ import annotations

import logging
from concurrent.futures import (
    Future,
    TimeoutError,
)

from tornado.concurrent import Future as tornado_Future
from tornado.gen import with_timeout

from .asyncutil import (
    AsyncCallbackEvent,
    AsyncEvent,
    AsyncState,
    LatencyTimer,
    future_timeout_manager,
    hashable_identity,
    log_coroutine_exceptions,
    log_future_exceptions,
    steal_docstring_from,
    until_any,
    until_later,
    until_some,
)
from .compat import byte_chars, encode_utf8_with_error_log, ensure_native_str, is_bytes, is_text
from .errors import (
    AsyncReply,
    FailReply,
    KatcpClientDisconnected,
    KatcpClientError,
    KatcpDeviceError,
    KatcpSyntaxError,
    KatcpTypeError,
    KatcpVersionError,
)
from .flags import (
    DEFAULT_KATCP_MAJOR,
    MID_KATCP_MAJOR,
    SEC_TS_KATCP_MAJOR,
    VERSION_CONNECT_KATCP_MAJOR,
    ProtocolFlags,
)
from .kattypes import (
    FLOAT_TS_KATCP_MAJOR,
    MS_TO_SEC_FAC,
    SEC_TO_MS_FAC,
    Address,
    Bool,
    Discrete,
    Float,
    Int,
    Lru,
    Str,
    Timestamp,
)
from .message import Message
from .parser import MessageParser
from .resource import AttrDict, DefaultAttrDict
from .sensor import Reading, Sensor
from .server.metaclass import DeviceMetaclass, convert_method_name

#: The protocol version that introduced ``#interface-changed``.
INTERFACE_CHANGED_KATCP_MAJOR = 5

#: katcp-python's other name for the device metaclass.
DeviceServerMetaclass = DeviceMetaclass

logger = logging.getLogger("katcp")

__all__ = [
    "Address",
    "AsyncCallbackEvent",
    "AsyncEvent",
    "AsyncReply",
    "AsyncState",
    "AttrDict",
    "Bool",
    "DEFAULT_KATCP_MAJOR",
    "DefaultAttrDict",
    "DeviceMetaclass",
    "DeviceServerMetaclass",
    "Discrete",
    "FLOAT_TS_KATCP_MAJOR",
    "FailReply",
    "Float",
    "Future",
    "INTERFACE_CHANGED_KATCP_MAJOR",
    "Int",
    "KatcpClientDisconnected",
    "KatcpClientError",
    "KatcpDeviceError",
    "KatcpSyntaxError",
    "KatcpTypeError",
    "KatcpVersionError",
    "LatencyTimer",
    "Lru",
    "MID_KATCP_MAJOR",
    "MS_TO_SEC_FAC",
    "Message",
    "MessageParser",
    "ProtocolFlags",
    "Reading",
    "SEC_TO_MS_FAC",
    "SEC_TS_KATCP_MAJOR",
    "Sensor",
    "Str",
    "TimeoutError",
    "Timestamp",
    "VERSION_CONNECT_KATCP_MAJOR",
    "byte_chars",
    "convert_method_name",
    "encode_utf8_with_error_log",
    "ensure_native_str",
    "future_timeout_manager",
    "hashable_identity",
    "is_bytes",
    "is_text",
    "log_coroutine_exceptions",
    "log_future_exceptions",
    "logger",
    "steal_docstring_from",
    "tornado_Future",
    "until_any",
    "until_later",
    "until_some",
    "with_timeout",
]
