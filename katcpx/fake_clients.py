"""Fake KATCP clients for testing code that uses an inspecting client, without a device.

katcp-python's ``katcp.fake_clients``: :func:`fake_inspecting_client_factory` makes an
:class:`~katcpx.inspecting_client.InspectingClientAsync` (or subclass) whose underlying
client is a :class:`FakeAsyncClient`. That client opens no socket: it is "connected" as soon
as it starts, and answers each request with a handler registered through the
:class:`FakeInspectingClientManager` (``?help`` and ``?sensor-list`` describe what was
registered; other requests reply ``ok``).

:func:`fake_KATCP_client_resource_factory` and
:func:`fake_KATCP_client_resource_container_factory` make fake resources: real
:class:`~katcpx.resource.KATCPClientResource` objects (or containers) whose inspecting client
is a :class:`FakeResourceInspectingClient`, reporting to the resource through the
:class:`~katcpx.resource.InspectingOwner` interface as the real client does.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import textwrap
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

from .asyncutil import AsyncEvent, transform_future
from .compat import convert_method_name
from .crossing import LoopBinding
from .errors import FailReplyError, InvalidReply
from .flags import ProtocolFlags
from .kattypes import Int, return_reply
from .message import Message
from .resource import AttrDict, InspectingOwner, ModelChanges, apply_model_diff, escape_name
from .sensor import Sensor
from .server import ClientRequestConnection
from .testutils import ClientConnectionTest

__all__ = [
    "AttrDict",
    "FakeAsyncClient",
    "FakeClientRequestConnection",
    "FakeInspectingClientManager",
    "FakeKATCPServer",
    "FakeKATCPServerError",
    "FakeResourceInspectingClient",
    "Message",
    "ProtocolFlags",
    "Sensor",
    "convert_method_name",
    "fake_inspecting_client_factory",
    "FakeKATCPClientResourceContainerManager",
    "FakeKATCPClientResourceManager",
    "fake_KATCP_client_resource_container_factory",
    "fake_KATCP_client_resource_factory",
]

log = logging.getLogger("katcp.fake_clients")


class FakeKATCPServerError(Exception):
    """Something was sent through a fake connection, which cannot send."""


class FakeKATCPServer:
    """The server side of a fake connection: it cannot send anything."""

    def get_address(self, conn_id: Any) -> str:
        """A made-up address naming ``conn_id``."""
        return f"<fake-client-connection: {conn_id!r}>"

    def send_message(self, conn_id: Any, msg: Message) -> None:
        """Raise: a fake connection cannot send.

        Raises
        ------
        FakeKATCPServerError
            Always.
        """
        raise FakeKATCPServerError("Cannot send messages via fake request/connection object")

    def mass_send_message(self, msg: Message) -> None:
        """Raise: a fake connection cannot send.

        Raises
        ------
        FakeKATCPServerError
            Always.
        """
        raise FakeKATCPServerError("Cannot send messages via fake request/connection object")

    def flush_on_close(self) -> asyncio.Future[None]:
        """A future that is already resolved."""
        future: asyncio.Future[None] = asyncio.Future()
        future.set_result(None)
        return future


class FakeClientRequestConnection(ClientRequestConnection):
    """A request connection that keeps its reply informs in ``informs_sent``."""

    def __init__(self, client_connection: Any, req_msg: Message) -> None:
        super().__init__(client_connection, req_msg)
        self.informs_sent: list[Message] = []

    def inform(self, *args: Any) -> None:
        """Keep a reply inform (same name and id as the request)."""
        self.informs_sent.append(Message.reply_inform(self.msg, *args))


class FakeAsyncClient:
    """A client with no socket whose requests are answered by ``request_handlers``.

    It has the parts of :class:`~katcpx.client.AsyncClient` an inspecting client uses.
    Handlers are called as ``handler(req, msg)`` and return the reply message (or a future
    or coroutine of it); unknown requests reply ``ok``.
    """

    def __init__(self, host: str, port: int, *args: Any, **kwargs: Any) -> None:
        self._address = (host, int(port))
        self._logger = kwargs.get("logger", log)
        self.request_handlers: dict[str, Callable[..., Any]] = {}
        self.fake_server = FakeKATCPServer()
        self.client_connection = ClientConnectionTest()
        self.protocol_flags: ProtocolFlags | None = None
        self.ioloop: IOLoop | None = None
        self._binding = LoopBinding()
        self._next_mid = 0
        self._events: dict[str, AsyncEvent] = {}

    def _event(self, name: str) -> AsyncEvent:
        # Made on first use, on the client's loop (an AsyncEvent binds to the current loop).
        if name not in self._events:
            self._events[name] = AsyncEvent(self.ioloop)
        return self._events[name]

    @property
    def ioloop_thread_id(self) -> int | None:
        """``threading.get_ident()`` of the loop's thread once started (katcp-python's)."""
        return self._binding.thread_id

    @property
    def bind_address(self) -> tuple[str, int]:
        """The (made-up) device address."""
        return self._address

    @property
    def bind_address_string(self) -> str:
        """The device address as ``host:port``."""
        return f"{self._address[0]}:{self._address[1]}"

    def notify_connected(self, connected: bool) -> None:
        """Called when the fake connection comes up or goes down (override or replace)."""

    def hook_inform(self, inform_name: str, callback: Callable[[Message], Any]) -> None:
        """Accepted and ignored: a fake device sends no informs."""

    def set_ioloop(self, ioloop: IOLoop | None = None) -> None:
        """Run on ``ioloop`` (the current one by default)."""
        self.ioloop = ioloop or IOLoop.current()

    def preset_protocol_flags(self, protocol_flags: ProtocolFlags) -> None:
        """Fix the protocol flags."""
        self.protocol_flags = protocol_flags

    def start(self, timeout: float | None = None) -> None:
        """Start: connected at once, with protocol flags ``5.0-IM``."""
        if self.ioloop is None:
            self.set_ioloop()
        # Started on the loop's thread, as katcp-python's fake is.
        self._binding.bind(getattr(self.ioloop, "asyncio_loop", None))
        self._event("stopped").clear()
        self._event("running").set()
        self._event("connected").set()
        self.preset_protocol_flags(ProtocolFlags(5, 0, {"I", "M"}))
        self.notify_connected(True)

    def stop(self, timeout: float | None = None) -> None:
        """Stop: disconnected."""
        self.disconnect()
        self._event("running").clear()
        self._event("stopped").set()

    def disconnect(self) -> None:
        """Drop the fake connection."""
        if self._event("connected").is_set():
            self._event("connected").clear()
            self.notify_connected(False)

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for: there is no thread."""

    def is_connected(self) -> bool:
        """Whether started and not stopped."""
        return self._event("connected").is_set()

    def until_running(self, timeout: float | None = None) -> Any:
        """Future resolving once started."""
        return self._event("running").until_set(timeout)

    def until_connected(self, timeout: float | None = None) -> Any:
        """Future resolving (None, as katcp-python's client's) once started."""
        return transform_future(lambda _: None, self._event("connected").until_set(timeout))

    until_protocol = until_connected

    def until_stopped(self, timeout: float | None = None) -> Any:
        """Future resolving once stopped."""
        return self._event("stopped").until_set(timeout)

    def future_request(
        self, msg: Message, timeout: float | None = None, use_mid: bool | None = None
    ) -> asyncio.Future[tuple[Message, list[Message]]]:
        """Answer ``msg`` with its handler; a future of ``(reply, informs)``.

        Message ids: the request's own, or the next one when ``use_mid`` is not False. A
        next id goes on the reply only, not on the handler's informs (katcp-python 0.9.3).
        """
        mid = msg.mid
        if mid is None and use_mid is not False:
            self._next_mid += 1
            mid = str(self._next_mid).encode()
        return asyncio.ensure_future(self._answer(msg, mid))

    async def call(
        self, name: str, *args: Any, timeout: float | None = None, use_mid: bool | None = None
    ) -> tuple[Message, list[Message]]:
        """:meth:`katcpx.AsyncClient.call` for the fake: ``(reply, informs)`` if ``ok``.

        Raises
        ------
        InvalidReply
            The handler replied ``invalid``.
        FailReplyError
            The handler replied anything else but ``ok``.
        """
        reply, informs = await self.future_request(Message.request(name, *args), timeout, use_mid)
        if reply.reply_ok():
            return reply, informs
        args_ = reply.arguments
        text = args_[1].decode("utf-8", "replace") if len(args_) > 1 else ""
        error = InvalidReply if args_[:1] == [b"invalid"] else FailReplyError
        raise error(text, reply, informs)

    async def _answer(self, msg: Message, mid: bytes | None) -> tuple[Message, list[Message]]:
        handler = self.request_handlers.get(msg.name)
        if handler is None:
            reply, informs = Message.reply(msg.name, "ok"), []
        else:
            req = FakeClientRequestConnection(self.client_connection, msg)
            reply = handler(req, msg)
            while inspect.isawaitable(reply):
                reply = await reply
            informs = req.informs_sent
        reply.mid = mid
        return reply, informs


def fake_inspecting_client_factory(
    InspectingClass: type,
    fake_options: dict[str, Any],
    host: str,
    port: int,
    *args: Any,
    **kwargs: Any,
) -> tuple[Any, FakeInspectingClientManager]:
    """Make a fake ``InspectingClass`` instance and its manager.

    Parameters
    ----------
    InspectingClass
        :class:`~katcpx.inspecting_client.InspectingClientAsync` or a subclass.
    fake_options
        Reserved (katcp-python's ``allow_any_request``; unknown requests reply ``ok``).
    host, port, *args, **kwargs
        As for ``InspectingClass``.

    Returns
    -------
    (inspecting client, FakeInspectingClientManager)
    """

    class FakeInspectingClass(InspectingClass):
        def inform_hook_client_factory(self, host: str, port: int, *a: Any, **kw: Any) -> Any:
            return FakeAsyncClient(host, port, *a, **kw)

    client = FakeInspectingClass(host, port, *args, **kwargs)
    return client, FakeInspectingClientManager(client)


class FakeInspectingClientManager:
    """Set what a fake inspecting client's device has: sensors and request handlers.

    Each change makes the inspecting client re-inspect, as ``#interface-changed`` would.
    """

    def __init__(self, fake_inspecting_client: Any) -> None:
        self._fic = fake_inspecting_client
        self._fkc = fake_inspecting_client.katcp_client
        #: Sensor name -> (description, units, type, *params), as ``?sensor-list`` gives.
        self.fake_sensor_infos: dict[str, tuple[Any, ...]] = {}
        self.add_request_handlers_object(self)

    def request_help(self, req: Any, msg: Message) -> Message:
        """Return help on the available requests."""
        handlers = self._fkc.request_handlers
        names = [msg.arguments[0].decode()] if msg.arguments else sorted(handlers)
        if any(name not in handlers for name in names):
            return req.make_reply("fail", "Unknown request method.")
        for name in names:
            req.inform(name, textwrap.dedent(handlers[name].__doc__ or "").strip())
        return req.make_reply("ok", str(len(names)))

    @return_reply(Int())
    def request_sensor_list(self, req: Any, msg: Message) -> Any:
        """List the fake sensors."""
        if msg.arguments:
            name = msg.arguments[0].decode()
            if name not in self.fake_sensor_infos:
                return ("fail", "Unknown sensor name.")
            names = [name]
        else:
            names = list(self.fake_sensor_infos)
        for name in names:
            req.inform(name, *self.fake_sensor_infos[name])
        return ("ok", len(names))

    def add_sensors(self, sensor_infos: dict[str, tuple[Any, ...]]) -> None:
        """Add sensors: name -> ``(description, units, type, *params)``.

        Raises
        ------
        ValueError
            If a type or its parameters are not valid.
        """
        for info in sensor_infos.values():
            sensor_type = Sensor.parse_type(info[2])
            Sensor.parse_params(sensor_type, [_as_bytes(p) for p in info[3:]])
        self.fake_sensor_infos.update(sensor_infos)
        self._fic.mark_interface_changed()

    def add_request_handlers_object(self, rh_obj: Any) -> None:
        """Add every ``request_*`` method of ``rh_obj`` as a request handler."""
        handlers = {}
        for name in dir(rh_obj):
            if name.startswith("request_") and callable(getattr(rh_obj, name)):
                handlers[convert_method_name("request_", name)] = getattr(rh_obj, name)
        self.add_request_handlers_dict(handlers)

    def add_request_handlers_dict(self, rh_dict: dict[str, Callable[..., Any]]) -> None:
        """Add request handlers: request name -> ``handler(req, msg)``.

        Raises
        ------
        AssertionError
            If a handler has no docstring (``?help`` needs one); katcp-python 0.9.3's
            exception and text (raised explicitly, so ``python -O`` keeps the check).
        """
        for handler in rh_dict.values():
            if not handler.__doc__:
                raise AssertionError("Even fake request handlers must have docstrings")
        self._fkc.request_handlers.update(rh_dict)
        self._fic.mark_interface_changed()


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class FakeResourceInspectingClient(FakeAsyncClient):
    """The fake device behind a fake resource; see the module docstring."""

    def __init__(self, host: str, port: int, owner: InspectingOwner, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._owner = owner
        #: The fake device's requests and sensors as last synced, by KATCP name.
        self.requests: dict[str, dict[str, Any]] = {}
        self.sensors: dict[str, dict[str, Any]] = {}
        self.synced = False
        self.versions: dict[str, tuple[str, ...]] = {}
        self.last_connect_time: float | None = None
        self._sync_task: asyncio.Future[None] | None = None
        self._new_connection = False

    def start(self, timeout: float | None = None) -> None:
        super().start(timeout)
        if self.ioloop is not None:
            self.last_connect_time = self.ioloop.time()
        self._new_connection = True
        self.mark_interface_changed()

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        self.synced = False
        self._owner.state_changed("disconnected")

    def mark_interface_changed(self) -> None:
        """Re-sync the model from the registered sensors and handlers."""
        if not self.is_connected():
            return
        self.synced = False
        self._owner.state_changed("syncing")
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.ensure_future(self._sync())

    async def _sync(self) -> None:
        await asyncio.sleep(0)  # let the "syncing" state be seen before the model changes
        changes = ModelChanges(new_connection=self._new_connection)
        self._new_connection = False
        requests = await self._listing("help")
        wanted = {
            name: {"name": name, "description": desc, "timeout_hint": None}
            for name, desc in ((a[0], a[1] if len(a) > 1 else "") for a in requests)
        }
        sensors = await self._listing("sensor-list")
        described = {
            a[0]: {
                "name": a[0],
                "description": a[1],
                "units": a[2],
                "type": a[3],
                "params": [p.encode() for p in a[4:]],
            }
            for a in sensors
        }
        apply_model_diff(self.requests, wanted, changes.requests_added, changes.requests_removed)
        apply_model_diff(self.sensors, described, changes.sensors_added, changes.sensors_removed)
        if changes:
            await self._owner.apply_changes(changes)
        self.synced = True
        self._owner.state_changed("synced")

    async def _listing(self, request: str) -> list[list[str]]:
        _reply, informs = await self.future_request(Message.request(request))
        return [[a.decode() for a in inform.arguments] for inform in informs]


class _ResourceManagerTarget:
    """What :class:`FakeInspectingClientManager` needs of its "inspecting client"."""

    def __init__(self, client: FakeResourceInspectingClient) -> None:
        self.katcp_client = client

    def mark_interface_changed(self) -> None:
        self.katcp_client.mark_interface_changed()


def fake_KATCP_client_resource_factory(
    KATCPClientResourceClass: type,
    fake_options: dict[str, Any],
    resource_spec: dict[str, Any],
    *args: Any,
    **kwargs: Any,
) -> tuple[Any, FakeKATCPClientResourceManager]:
    """Make a fake resource of ``KATCPClientResourceClass`` and its manager.

    The manager works once the resource has been started.
    """

    class FakeKATCPClientResource(KATCPClientResourceClass):
        def inspecting_client_factory(self, host: str, port: int, ioloop_set_to: Any) -> Any:
            client = FakeResourceInspectingClient(host, port, owner=self.inspecting_owner)
            client.set_ioloop(ioloop_set_to)
            self.fake_inspecting_client_manager = FakeInspectingClientManager(
                _ResourceManagerTarget(client)
            )
            return client

    resource = FakeKATCPClientResource(resource_spec, *args, **kwargs)
    return resource, FakeKATCPClientResourceManager(resource)


def fake_KATCP_client_resource_container_factory(
    KATCPClientResourceContainerClass: type,
    fake_options: dict[str, Any],
    resources_spec: dict[str, Any],
    *args: Any,
    **kwargs: Any,
) -> tuple[Any, FakeKATCPClientResourceContainerManager]:
    """Make a fake container of ``KATCPClientResourceContainerClass`` and its manager."""

    class FakeKATCPClientResourceContainer(KATCPClientResourceContainerClass):
        def __init__(self, *a: Any, **kw: Any) -> None:
            self.fake_client_resource_managers: dict[str, FakeKATCPClientResourceManager] = {}
            super().__init__(*a, **kw)

        def client_resource_factory(
            self, res_spec: dict[str, Any], parent: Any, logger: Any
        ) -> Any:
            real = super().client_resource_factory(res_spec, parent, logger)
            resource, manager = fake_KATCP_client_resource_factory(
                type(real), fake_options, res_spec, parent=self, logger=logger
            )
            self.fake_client_resource_managers[escape_name(resource.name)] = manager
            return resource

    container = FakeKATCPClientResourceContainer(resources_spec, *args, **kwargs)
    return container, FakeKATCPClientResourceContainerManager(container)


class FakeKATCPClientResourceManager:
    """Add sensors and request handlers to a started fake resource."""

    def __init__(self, fake_katcp_resource_client: Any) -> None:
        self._fkrc = fake_katcp_resource_client

    @property
    def _fic_manager(self) -> FakeInspectingClientManager:
        try:
            return self._fkrc.fake_inspecting_client_manager
        except AttributeError:
            raise RuntimeError(
                "Fake KATCPClientResource must be started before it can be managed"
            ) from None

    @property
    def fake_sensor_infos(self) -> dict[str, tuple[Any, ...]]:
        """The fake sensors, as for :meth:`add_sensors`."""
        return self._fic_manager.fake_sensor_infos

    def add_sensors(self, sensor_infos: dict[str, tuple[Any, ...]]) -> None:
        """See :meth:`FakeInspectingClientManager.add_sensors`."""
        self._fic_manager.add_sensors(sensor_infos)

    def add_request_handlers_object(self, rh_obj: Any) -> None:
        """See :meth:`FakeInspectingClientManager.add_request_handlers_object`."""
        self._fic_manager.add_request_handlers_object(rh_obj)

    def add_request_handlers_dict(self, rh_dict: dict[str, Any]) -> None:
        """See :meth:`FakeInspectingClientManager.add_request_handlers_dict`."""
        self._fic_manager.add_request_handlers_dict(rh_dict)


class FakeKATCPClientResourceContainerManager:
    """Add sensors and request handlers to the children of a started fake container."""

    def __init__(self, fake_katcp_resource_container: Any) -> None:
        self._fkcrc = fake_katcp_resource_container

    @property
    def child_managers(self) -> dict[str, FakeKATCPClientResourceManager]:
        """The children's managers, by escaped child name."""
        return self._fkcrc.fake_client_resource_managers

    def add_sensors(self, child_name: str, sensor_infos: dict[str, tuple[Any, ...]]) -> None:
        """Add sensors to child ``child_name``."""
        self.child_managers[child_name].add_sensors(sensor_infos)

    def add_request_handlers_object(self, child_name: str, rh_obj: Any) -> None:
        """Add ``rh_obj``'s ``request_*`` methods to child ``child_name``."""
        self.child_managers[child_name].add_request_handlers_object(rh_obj)

    def add_request_handlers_dict(self, child_name: str, rh_dict: dict[str, Any]) -> None:
        """Add request handlers to child ``child_name``."""
        self.child_managers[child_name].add_request_handlers_dict(rh_dict)
