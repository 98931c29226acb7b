"""Small test helpers of katcp-python's ``katcp.testutils``: logs, threads, callbacks, mocks."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from .._object_proxy import ObjectWrapper
from ..compat import convert_method_name
from ..message import Message

__all__ = [
    "AtomicIaddCallback",
    "TestLogHandler",
    "WaitingMock",
    "add_mid_to_msg_str",
    "counting_callback",
    "list_to_native_strings",
    "mock_req",
    "request_handler",
    "request_names",
    "start_thread_with_cleanup",
    "suppress_queue_repeats",
]


def add_mid_to_msg_str(msg_str: str, mid: Any) -> str:
    """Insert ``[mid]`` after the message name of ``msg_str`` (unchanged without a mid)."""
    if not mid:
        return msg_str
    head, sep, rest = msg_str.partition(" ")
    return f"{head}[{mid}]{sep}{rest}"


def list_to_native_strings(items: Any) -> list[str]:
    """Each item as ``str``: bytes decoded as UTF-8, other objects through ``str()``."""
    return [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in items]


class TestLogHandler(logging.Handler):
    """A log handler that keeps every record in ``_records`` (katcp-python's attribute)."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        super().__init__()
        self._records: list[logging.LogRecord] = []

    @property
    def records(self) -> list[logging.LogRecord]:
        """The records kept so far."""
        return self._records

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record``."""
        self._records.append(record)

    def clear(self) -> None:
        """Forget the records kept so far."""
        self._records = []


def start_thread_with_cleanup(
    test_instance: Any, thread_object: Any, timeout: float = 1, start_timeout: float | None = None
) -> None:
    """Start ``thread_object`` (a server, client or loop manager) and stop it at test cleanup.

    Cleanups run last-in first-out, so ``stop()`` runs before ``join(timeout=timeout)``.
    """
    test_instance.addCleanup(thread_object.join, timeout=timeout)
    test_instance.addCleanup(thread_object.stop)
    if start_timeout is None:
        thread_object.start()
    else:
        thread_object.start(timeout=start_timeout)


def counting_callback(
    event: threading.Event | None = None, number_of_calls: int = 1
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a callback so that ``event`` is set once it was called ``number_of_calls`` times.

    The wrapped callback has ``get_no_calls()``, ``done`` (the event), ``wait(timeout)``,
    ``assert_wait(timeout=1)`` and ``reset()``.
    """
    if number_of_calls < 1:
        raise ValueError("number_of_calls must be at least 1")
    done = event if event is not None else threading.Event()

    def decorator(original: Callable[..., Any]) -> Callable[..., Any]:
        calls = [0]

        @functools.wraps(original)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            calls[0] += 1
            if calls[0] >= number_of_calls:
                done.set()
            return result

        def assert_wait(timeout: float = 1) -> bool:
            finished = done.wait(timeout)
            assert done.is_set(), f"callback called {calls[0]} of {number_of_calls} times"
            return finished

        def reset() -> None:
            calls[0] = 0
            done.clear()

        wrapped.get_no_calls = lambda: calls[0]  # type: ignore[attr-defined]
        wrapped.done = done  # type: ignore[attr-defined]
        wrapped.wait = done.wait  # type: ignore[attr-defined]
        wrapped.assert_wait = assert_wait  # type: ignore[attr-defined]
        wrapped.reset = reset  # type: ignore[attr-defined]
        return wrapped

    return decorator


def suppress_queue_repeats(
    suppressed_queue: queue.Queue[Any], initial_value: Any, read_time: float | None = None
) -> Iterator[Any]:
    """Yield values from ``suppressed_queue`` that differ from the previous one.

    Stops once no value arrives for ``read_time`` seconds after the start (None: never).
    """
    deadline = None if read_time is None else time.monotonic() + read_time
    current = initial_value
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            value = suppressed_queue.get(timeout=wait)
        except queue.Empty:
            return
        if value != current:
            current = value
            yield value


class AtomicIaddCallback(ObjectWrapper):
    """Wrap a number so ``+=`` is atomic and calls ``callback(new_value)`` afterwards."""

    _mutex: Any = None
    _callback: Any = None

    def __init__(
        self, ob: Any, callback: Callable[[Any], Any] = lambda x: x, mutex: Any = None
    ) -> None:
        super().__init__(ob)
        self._callback = callback
        self._mutex = mutex if mutex is not None else threading.RLock()

    def __iadd__(self, other: Any) -> AtomicIaddCallback:
        with self._mutex:
            new = self.__subject__ + other
            object.__setattr__(self, "__subject__", new)
        self._callback(new)
        return self

    # Comparisons and arithmetic act on the wrapped number.
    def __eq__(self, other: object) -> bool:
        return bool(self.__subject__ == other)

    def __lt__(self, other: Any) -> bool:
        return bool(self.__subject__ < other)

    def __le__(self, other: Any) -> bool:
        return bool(self.__subject__ <= other)

    def __gt__(self, other: Any) -> bool:
        return bool(self.__subject__ > other)

    def __ge__(self, other: Any) -> bool:
        return bool(self.__subject__ >= other)

    def __int__(self) -> int:
        return int(self.__subject__)

    def __index__(self) -> int:
        return int(self.__subject__)

    def __add__(self, other: Any) -> Any:
        return self.__subject__ + other

    def __hash__(self) -> int:
        return hash(self.__subject__)


class WaitingMock(mock.Mock):
    """A ``Mock`` whose ``assert_wait_call_count(count, timeout=1)`` waits for calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.__dict__["_called_cond"] = threading.Condition()

    def _increment_mock_call(self, *args: Any, **kwargs: Any) -> None:
        super()._increment_mock_call(*args, **kwargs)
        cond = self.__dict__.get("_called_cond")
        if cond is not None:
            with cond:
                cond.notify_all()

    def assert_wait_call_count(self, count: int, timeout: float = 1.0) -> bool:
        """Wait up to ``timeout`` seconds until called ``count`` times.

        Raises
        ------
        AssertionError
            If the count is not reached in time.
        """
        with self.__dict__["_called_cond"]:
            reached = self.__dict__["_called_cond"].wait_for(
                lambda: self.call_count >= count, timeout
            )
        assert reached, f"called {self.call_count} times, expected {count}"
        return True


def mock_req(req_name: str, *args: Any, **kwargs: Any) -> WaitingMock:
    """A mock request connection for calling a handler directly.

    ``req.msg`` is ``?req_name *args``; ``req.reply(*args)`` records ``req.reply_msg`` and
    resolves ``req.reply_and_inform_msgs_future`` with ``(reply_msg, inform_msgs)``;
    ``req.inform(*args)`` appends to ``req.inform_msgs``; ``req.make_reply`` builds a reply.
    ``client_conn=`` sets ``req.client_connection`` (a :class:`WaitingMock` by default).
    """
    client_conn = kwargs.get("client_conn")
    if kwargs.get("server") is not None and client_conn is not None:
        raise TypeError("Specify either server or client_conn, not both")
    req = WaitingMock()
    req.reply_msg = None
    req.inform_msgs = []
    req.client_connection = client_conn if client_conn is not None else WaitingMock()
    req.msg = Message.request(req_name, *args)
    # A concurrent future: made without an event loop, and still awaitable from tornado
    # coroutines (``yield``) as katcp-python's tornado future was.
    req.reply_and_inform_msgs_future = concurrent.futures.Future()
    req.make_reply.side_effect = lambda *a: Message.reply_to_request(req.msg, *a)

    def reply(*a: Any) -> None:
        req.reply_msg = Message.reply_to_request(req.msg, *a)
        req.reply_and_inform_msgs_future.set_result((req.reply_msg, req.inform_msgs))

    req.reply.side_effect = reply
    req.inform.side_effect = lambda *a: req.inform_msgs.append(Message.reply_inform(req.msg, *a))
    return req


def request_handler(server: Any, name: str) -> Callable[..., Any] | None:
    """The ``request_*`` method of `server` (a device server or its class) handling request
    `name`, as its class serves it, or None.

    katcp-python's test utilities read the handler table directly; this asks the public
    surface instead: the method by its name, and the class's ``check_protocol`` (handlers
    the server's protocol version leaves out are not served).
    """
    handler = getattr(server, "request_" + name.replace("-", "_"), None)
    cls: Any = server if isinstance(server, type) else type(server)
    if not callable(handler) or not cls.check_protocol(handler):
        return None
    return handler


def request_names(server_class: type) -> set[str]:
    """Names of the requests `server_class` serves from its ``request_*`` methods."""
    return {
        convert_method_name("request_", attr)
        for attr in dir(server_class)
        if attr.startswith("request_")
        and request_handler(server_class, convert_method_name("request_", attr)) is not None
    }
