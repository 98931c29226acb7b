"""katcp-python's ``katcp.testutils``: the testing API device test suites use.

:class:`BlockingTestClient` (request and sensor assertions through a ``unittest.TestCase``),
the test servers (:class:`DeviceTestServer` and variants), :class:`TestLogHandler`,
:func:`start_thread_with_cleanup`, the sensor comparison mixins and waiters, the mocks, and the
timewarp test case. Each is katcpx's own implementation of katcp-python 0.9.3's API.
"""

from __future__ import annotations

from concurrent.futures import (
    Future,
    TimeoutError,
)

from tornado.concurrent import Future as tornado_Future

from .._object_proxy import ObjectWrapper
from ..asyncutil import AsyncEvent, steal_docstring_from
from ..compat import ensure_native_str, is_bytes, is_text
from ..errors import AsyncReply, FailReply
from ..flags import ProtocolFlags
from ..kattypes import (
    Bool,
    Discrete,
    Float,
    Int,
    Str,
    concurrent_reply,
    request,
    request_timeout_hint,
    return_reply,
)
from ..message import Message
from ..sensor import Sensor
from ..server import ClientConnection, DeviceServer
from ._client import BlockingTestClient, MessageRecorder
from ._helpers import (
    AtomicIaddCallback,
    TestLogHandler,
    WaitingMock,
    add_mid_to_msg_str,
    counting_callback,
    list_to_native_strings,
    mock_req,
    start_thread_with_cleanup,
    suppress_queue_repeats,
)
from ._sensors import (
    SensorComparisonMixin,
    SensorTransitionStatusWaiter,
    SensorTransitionWaiter,
    TestUtilMixin,
    wait_sensor,
    wait_sensor_async,
)
from ._servers import (
    AsyncDeviceTestServer,
    ClientConnectionTest,
    DeviceTestSensor,
    DeviceTestServer,
    DeviceTestServerWithTimeoutHints,
)
from ._timewarp import (
    AsyncWaitingMock,
    TimewarpAsyncTestCase,
    TimewarpAsyncTestCaseTimeAdvancer,
    call_in_ioloop,
    handle_mock_req,
)

__all__ = [
    "AsyncDeviceTestServer",
    "AsyncEvent",
    "AsyncReply",
    "AsyncWaitingMock",
    "AtomicIaddCallback",
    "BlockingTestClient",
    "Bool",
    "ClientConnection",
    "ClientConnectionTest",
    "DeviceServer",
    "DeviceTestSensor",
    "DeviceTestServer",
    "DeviceTestServerWithTimeoutHints",
    "Discrete",
    "FailReply",
    "Float",
    "Future",
    "Int",
    "Message",
    "MessageRecorder",
    "ObjectWrapper",
    "ProtocolFlags",
    "Sensor",
    "SensorComparisonMixin",
    "SensorTransitionStatusWaiter",
    "SensorTransitionWaiter",
    "Str",
    "TestLogHandler",
    "TestUtilMixin",
    "TimeoutError",
    "TimewarpAsyncTestCase",
    "TimewarpAsyncTestCaseTimeAdvancer",
    "WaitingMock",
    "add_mid_to_msg_str",
    "call_in_ioloop",
    "concurrent_reply",
    "counting_callback",
    "ensure_native_str",
    "handle_mock_req",
    "is_bytes",
    "is_text",
    "list_to_native_strings",
    "mock_req",
    "request",
    "request_timeout_hint",
    "return_reply",
    "start_thread_with_cleanup",
    "steal_docstring_from",
    "suppress_queue_repeats",
    "tornado_Future",
    "wait_sensor",
    "wait_sensor_async",
]
