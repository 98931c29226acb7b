"""KATCP types and the request/reply decorators built on them (no I/O).

This module provides katcp-python's ``katcp.kattypes`` API:

* types (:class:`Int`, :class:`Float`, :class:`Bool`, :class:`Str`, :class:`Discrete`,
  :class:`DiscreteMulti`, :class:`Lru`, :class:`Address`, :class:`Timestamp`,
  :class:`TimestampOrNow`, :class:`StrictTimestamp`, :class:`Struct`, :class:`Regex`) that
  pack Python values into message arguments and unpack arguments into values;
* decorators (:func:`request`, :func:`return_reply`, :func:`send_reply`, :func:`inform`,
  :func:`unpack_message`, :func:`concurrent_reply`, :func:`request_timeout_hint`,
  :func:`minimum_katcp_version`, :func:`has_katcp_protocol_flags`);
* :func:`prepare_request_handler`, which turns an annotated handler such as
  ``async def request_foo(self, req, a: int, b: float = 2.0) -> tuple[int, str]`` into a
  ``(self, req, msg)`` handler.

Errors
------
* Packing, unpacking or checking a value raises :class:`~katcpx.errors.KatcpTypeError`
  (a :class:`ValueError`, as katcp-python's types raise ``ValueError``).
* The request decorators turn a bad request argument, or a wrong number of arguments, into
  :class:`~katcpx.errors.FailReply` whose text names the parameter, for example
  ``Error in parameter 2 (gain): could not parse 'x' as float``. A server answers
  ``FailReply`` with ``!name fail <text>``.
* A handler that returns something that cannot be packed into a reply gets
  :class:`~katcpx.errors.KatcpTypeError` (a bug in the handler, not in the request).
"""

from ..codec import FLOAT_TS_KATCP_MAJOR
from ..compat import convert_method_name, ensure_native_str, is_bytes, is_text
from ..errors import FailReply, KatcpTypeError, KatcpValueTypeError
from ..flags import DEFAULT_KATCP_MAJOR, SEC_TS_KATCP_MAJOR
from ..message import Message
from ._annotated import prepare_request_handler
from ._decorators import (
    CONCURRENT_REPLY,
    HAS_KATCP_PROTOCOL_FLAGS,
    MINIMUM_KATCP_VERSION,
    REQUEST_TIMEOUT_HINT,
    async_make_reply,
    concurrent_reply,
    handler_marker,
    has_katcp_protocol_flags,
    inform,
    make_reply,
    mark_handler,
    minimum_katcp_version,
    request,
    request_timeout_hint,
    return_reply,
    send_reply,
    unpack_message,
)
from ._packing import Parameter, pack_types, unpack_types
from ._special_types import (
    Address,
    Regex,
    StrictTimestamp,
    Struct,
    Timestamp,
    TimestampOrNow,
)
from ._types import (
    Bool,
    Discrete,
    DiscreteMulti,
    Float,
    Int,
    KatcpType,
    Lru,
    Str,
)

#: katcp-python's conversion factors between v4 (ms) and v5 (s) times.
SEC_TO_MS_FAC = 1000
MS_TO_SEC_FAC = 1.0 / 1000

__all__ = [
    "CONCURRENT_REPLY",
    "HAS_KATCP_PROTOCOL_FLAGS",
    "MINIMUM_KATCP_VERSION",
    "REQUEST_TIMEOUT_HINT",
    "handler_marker",
    "mark_handler",
    "DEFAULT_KATCP_MAJOR",
    "MS_TO_SEC_FAC",
    "Message",
    "SEC_TO_MS_FAC",
    "convert_method_name",
    "ensure_native_str",
    "is_bytes",
    "is_text",
    "KatcpType",
    "Int",
    "Float",
    "Bool",
    "Str",
    "Discrete",
    "DiscreteMulti",
    "Lru",
    "Address",
    "Timestamp",
    "TimestampOrNow",
    "StrictTimestamp",
    "Struct",
    "Regex",
    "Parameter",
    "request",
    "inform",
    "unpack_message",
    "return_reply",
    "send_reply",
    "make_reply",
    "async_make_reply",
    "concurrent_reply",
    "request_timeout_hint",
    "minimum_katcp_version",
    "has_katcp_protocol_flags",
    "unpack_types",
    "pack_types",
    "prepare_request_handler",
    "FailReply",
    "KatcpTypeError",
    "KatcpValueTypeError",
    "SEC_TS_KATCP_MAJOR",
    "FLOAT_TS_KATCP_MAJOR",
]
