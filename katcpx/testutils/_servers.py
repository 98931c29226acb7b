"""katcp-python's test device servers: ``DeviceTestServer`` and its variants.

Their sensors and requests are the ones katcp-python's ``katcp.testutils`` servers have, so
device test suites written against those run unchanged.
"""

from __future__ import annotations

import asyncio
import datetime
import queue
from typing import Any

from tornado import gen

from ..asyncutil import AsyncEvent
from ..crossing import LoopBinding
from ..errors import FailReply
from ..flags import ProtocolFlags
from ..kattypes import (
    Bool,
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
from ..server import DeviceServer

__all__ = [
    "AsyncDeviceTestServer",
    "ClientConnectionTest",
    "DeviceTestSensor",
    "DeviceTestServer",
    "DeviceTestServerWithTimeoutHints",
]


class ClientConnectionTest:
    """A stand-in client connection that records what a server sends it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.mass_informs: list[Message] = []

    def inform(self, msg: Message) -> None:
        """Record an inform."""
        self.messages.append(msg)

    def mass_inform(self, msg: Message) -> None:
        """Record a mass inform."""
        self.mass_informs.append(msg)

    def reply(self, msg: Message, req_msg: Message) -> None:
        """Record a reply."""
        self.messages.append(msg)

    @property
    def informs(self) -> list[Message]:
        """The recorded informs."""
        return [m for m in self.messages if m.mtype == Message.INFORM]

    @property
    def replies(self) -> list[Message]:
        """The recorded replies."""
        return [m for m in self.messages if m.mtype == Message.REPLY]


class DeviceTestSensor(Sensor):
    """A sensor created with a reading: ``(sensor_type, name, description, units, params,
    timestamp, status, value)``."""

    def __init__(
        self,
        sensor_type: int,
        name: str,
        description: str,
        units: str,
        params: Any,
        timestamp: float,
        status: int,
        value: Any,
    ) -> None:
        super().__init__(sensor_type, name, description, units, params)
        self.set(timestamp, status, value)


class DeviceTestServer(DeviceServer):
    """A device server with katcp-python's test sensors and requests.

    Sensors ``an.int``, ``a.discrete``, ``a.float``, ``a.floatwithzero``; requests
    ``new-command``, ``raise-exception``, ``raise-fail``, ``slow-command`` (waits the given
    seconds, ends early on ``?cancel-slow-command``), ``decorated`` and
    ``decorated-return-exception``. ``break_help``/``break_sensor_list`` set to a message
    make those requests fail with it. ``messages`` lists every message handled;
    ``until_messages(n)`` is a future for when ``n`` were. While
    ``proceed_on_client_connect`` (an :class:`~katcpx.asyncutil.AsyncEvent`) is clear, new
    clients get no greeting.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._test_msgs: list[Message] = []
        self.break_sensor_list: Any = False
        self.break_help: Any = False
        self.restart_queue: queue.Queue[Any] = queue.Queue()
        self.set_restart_queue(self.restart_queue)
        self._slow_futures: dict[Any, asyncio.Future[Any]] = {}
        # The slow command's handler runs in the handler thread: it hands its wait over.
        self._loop_binding = LoopBinding()
        self._cnt_futures: set[tuple[int, Any]] = set()
        self.proceed_on_client_connect = _LazyEvent()

    @property
    def request_names(self) -> list[str]:
        """Names of the requests this server handles."""
        return list(self._request_handlers)

    @property
    def sensor_names(self) -> list[str]:
        """Names of this server's sensors."""
        return [s.name for s in self.get_sensors()]

    async def on_client_connect(self, client_conn: Any) -> Any:
        await self.proceed_on_client_connect.until_set()
        return super().on_client_connect(client_conn)

    def setup_sensors(self) -> None:
        self.restarted = False
        self.add_sensor(
            DeviceTestSensor(
                Sensor.INTEGER, "an.int", "An Integer.", "count", [-5, 5], 12345, Sensor.NOMINAL, 3
            )
        )
        self.add_sensor(
            DeviceTestSensor(
                Sensor.DISCRETE,
                "a.discrete",
                "A Discrete.",
                "",
                ["one", "two", "three"],
                12345,
                Sensor.NOMINAL,
                "one",
            )
        )
        self.add_sensor(
            DeviceTestSensor(
                Sensor.FLOAT,
                "a.float",
                "A Float.",
                "",
                [-123.4, 123.4],
                12345,
                Sensor.NOMINAL,
                12.0,
            )
        )
        self.add_sensor(
            DeviceTestSensor(
                Sensor.FLOAT,
                "a.floatwithzero",
                "A Float with zero.",
                "",
                [-123.0, 123.0],
                12345,
                Sensor.NOMINAL,
                12.0,
            )
        )

    def request_new_command(self, req: Any, msg: Message) -> Message:
        """A new command."""
        return Message.reply(msg.name, "ok", "param1", "param2")

    def request_raise_exception(self, req: Any, msg: Message) -> Message:
        """A handler which raises an exception."""
        raise Exception("An exception occurred!")

    def request_raise_fail(self, req: Any, msg: Message) -> Message:
        """A handler which raises a FailReply."""
        raise FailReply("There was a problem with your request.")

    @request_timeout_hint(99)
    def request_slow_command(self, req: Any, msg: Message) -> Any:
        """A slow command, waits for msg.arguments[0] seconds.

        This is an async request that will allow another request to be handled
        before this one replies.

        Request can be cancelled using ?cancel-slow-command
        """
        if req.client_connection in self._slow_futures:
            raise FailReply("A slow command is already running for this connection")
        wait_time = float(msg.arguments[0])
        loop = self._loop_binding.loop
        if loop is None:
            raise FailReply("The server is not running")
        fut = self._slow_futures[req.client_connection] = loop.create_future()

        async def wait_then_reply() -> None:
            try:
                await asyncio.wait_for(asyncio.shield(fut), wait_time)
            except asyncio.TimeoutError:
                pass
            finally:
                self._slow_futures.pop(req.client_connection, None)
            req.reply("ok")

        self._loop_binding.call(lambda: loop.create_task(wait_then_reply()))
        raise _async_reply()

    def request_cancel_slow_command(self, req: Any, msg: Message) -> Message:
        """Cancel slow command request, resulting in it replying immediately."""
        fut = self._slow_futures.pop(req.client_connection, None)
        if fut is not None and not fut.done():
            self._loop_binding.call_here_or_soon(_resolve, fut)
        return req.make_reply("ok")

    @request(Str(), Float(), Int(), Bool())
    @return_reply(Str(), Float(), Int(), Bool())
    def request_decorated(
        self, req: Any, _string: str, _float: float, _int: int, do_raise: bool
    ) -> Any:
        """Decorated handler, return params, optionally raise exception."""
        if do_raise:
            raise Exception("An exception occurred!")
        req.inform("_string", str(type(_string)))
        req.inform("_float", str(type(_float)))
        req.inform("_int", str(type(_int)))
        req.inform("do_raise", str(type(do_raise)))
        return "ok", _string, _float, _int, do_raise

    @return_reply()
    def request_decorated_return_exception(self, req: Any, msg: Message) -> Any:
        """Decorated handler, return fail with exception object."""
        try:
            raise Exception("An exception occurred!")
        except Exception as exc:
            return "fail", exc

    def handle_message(self, client_conn: Any, msg: Message) -> Any:
        self._test_msgs.append(msg)
        self._check_cnt_futures()
        return super().handle_message(client_conn, msg)

    def request_help(self, req: Any, msg: Message) -> Any:
        if self.break_help:
            return req.make_reply("fail", self.break_help)
        return super().request_help(req, msg)

    request_help.__doc__ = DeviceServer.request_help.__doc__

    def request_sensor_list(self, req: Any, msg: Message) -> Any:
        if self.break_sensor_list:
            return req.make_reply("fail", self.break_sensor_list)
        return super().request_sensor_list(req, msg)

    request_sensor_list.__doc__ = DeviceServer.request_sensor_list.__doc__

    @property
    def messages(self) -> list[Message]:
        """Every message this server handled, in order."""
        return self._test_msgs

    def until_messages(self, cnt: int) -> Any:
        """A concurrent future resolving (with :attr:`messages`) once ``cnt`` were handled."""
        import concurrent.futures

        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._cnt_futures.add((cnt, fut))
        self._check_cnt_futures()
        return fut

    def _check_cnt_futures(self) -> None:
        count = len(self._test_msgs)
        for wanted, fut in list(self._cnt_futures):
            if count >= wanted:
                self._cnt_futures.discard((wanted, fut))
                if not fut.done():
                    fut.set_result(self._test_msgs)

    def on_server_start(self) -> None:
        super().on_server_start()
        self._loop_binding.bind()

    def on_server_stop(self) -> None:
        self._loop_binding.unbind()
        super().on_server_stop()

    def stop(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]  # katcp-python
        """Stop as the server does, releasing any ``?slow-command`` first.

        Returns None, as katcp-python's ``DeviceTestServer.stop`` (whose override drops the
        server's future); :meth:`join` waits for the stop.
        """
        for fut in list(self._slow_futures.values()):
            if not fut.done():
                # Dropped when the loop has stopped already: the wait went with it.
                self._loop_binding.call_here_or_soon(_resolve, fut)
        super().stop(*args, **kwargs)


def _resolve(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


def _async_reply() -> Exception:
    from ..errors import AsyncReply

    return AsyncReply()


class _LazyEvent:
    """An :class:`AsyncEvent` made on first use on the server's loop, set from the start.

    The server object is built outside its loop, where no loop is current yet.
    """

    def __init__(self) -> None:
        self._set = True
        self._event: AsyncEvent | None = None

    def _get(self) -> AsyncEvent:
        if self._event is None:
            self._event = AsyncEvent()
            if self._set:
                self._event.set()
        return self._event

    def set(self) -> None:
        """Let greetings through."""
        self._set = True
        if self._event is not None:
            self._event.set()

    def clear(self) -> None:
        """Hold greetings back."""
        self._set = False
        if self._event is not None:
            self._event.clear()

    def isSet(self) -> bool:
        """Whether greetings go through."""
        return self._set

    is_set = isSet

    def until_set(self, timeout: float | None = None) -> Any:
        """A future resolving when set."""
        return self._get().until_set(timeout)


class AsyncDeviceTestServer(DeviceTestServer):
    """:class:`DeviceTestServer` handling requests on its loop; ``slow-command`` is a coroutine."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_concurrency_options(thread_safe=False, handler_thread=False)

    @request(Float())
    @return_reply()
    @request_timeout_hint(99)
    @concurrent_reply
    @gen.coroutine
    def request_slow_command(self, req: Any, wait_time: float) -> Any:
        """A slow coroutine request, waits for msg.arguments[0] seconds.

        This is an async request that will allow another request to be handled
        before this one replies.

        Request can be cancelled using ?cancel-slow-command
        """
        if req.client_connection in self._slow_futures:
            raise FailReply("A slow command is already running for this connection")
        fut = self._slow_futures[req.client_connection] = asyncio.get_running_loop().create_future()
        try:
            yield gen.with_timeout(datetime.timedelta(seconds=wait_time), fut)
        except gen.TimeoutError:
            pass
        finally:
            self._slow_futures.pop(req.client_connection, None)
        return ("ok",)


class DeviceTestServerWithTimeoutHints(DeviceTestServer):
    """:class:`DeviceTestServer` announcing flag T, with hints for two requests."""

    PROTOCOL_INFO = ProtocolFlags(
        5,
        1,
        {
            ProtocolFlags.MULTI_CLIENT,
            ProtocolFlags.MESSAGE_IDS,
            ProtocolFlags.REQUEST_TIMEOUT_HINTS,
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout_hints = {"slow-command": 10.5, "raise-fail": 2.3}

    @request(Str(optional=True))
    @return_reply(Int())
    def request_request_timeout_hint(self, req: Any, name: str | None) -> Any:
        """Return timeout hints for requests"""
        hints = (
            {name: self.request_timeout_hints.get(name, 0)} if name else self.request_timeout_hints
        )
        for req_name, hint in hints.items():
            req.inform(req_name, hint)
        return ("ok", len(hints))
