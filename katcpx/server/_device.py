"""DeviceServer and AsyncDeviceServer: the standard requests, on top of SensorDeviceServer."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from .._version import VERSION_STR
from ..errors import FailReply
from ..flags import ProtocolFlags
from ..kattypes import has_katcp_protocol_flags, minimum_katcp_version
from ..message import Message
from ._connection import ClientRequestConnection
from ._dispatch import loop_safe
from ._sampling_requests import SamplingRequests, returns_future_on_loop
from ._sensors import argument_text, construct_name_filter
from .access import show_roles
from .sampling_loop import ReadingFormatter

__all__ = ["DeviceServer", "AsyncDeviceServer", "construct_name_filter"]


class DeviceServer(SamplingRequests):
    """Implements the standard requests and sensors on top of :class:`DeviceServerBase`.

    Informs sent: ``#version-connect`` on connect (``#version`` and ``#build-state`` when
    ``PROTOCOL_INFO`` is v4), ``#client-connected`` to the other clients, ``#log`` (through
    ``self.log``), ``#disconnect``, ``#sensor-status`` and ``#interface-changed``.

    Requests handled: halt, help, log-level, restart (through :meth:`set_restart_queue`),
    client-list, sensor-list, sensor-sampling, sensor-sampling-clear, sensor-value,
    watchdog, version-list (v5 and later) and request-timeout-hint (with flag ``T``).

    Subclasses set ``VERSION_INFO = (name, major, minor)`` and ``BUILD_INFO = (name,
    major, minor, extra)``, may edit ``self.extra_versions`` (name → ``(version,
    build_state_or_None)``) for ``?version-list``, and must override :meth:`setup_sensors`.

    By default requests are handled in a separate handler thread (katcp-python's default);
    :class:`AsyncDeviceServer` handles them on the loop.
    """

    # -- standard requests --------------------------------------------------------------

    @returns_future_on_loop
    async def request_halt(self, req: ClientRequestConnection, msg: Message) -> None:
        """Halt the device server.

        Returns
        -------
        success : {'ok', 'fail'}
            Whether scheduling the halt succeeded.

        Examples
        --------
        ::

            ?halt
            !halt ok
        """
        req.reply("ok")
        # Queued behind the reply, so the client sees !halt ok before #disconnect.
        self.stop(timeout=None)

    @loop_safe
    def request_help(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Return help on the available requests.

        Return a description of the available requests using a sequence of #help informs.

        Parameters
        ----------
        request : str, optional
            The name of the request to return help for (the default is to return help for
            all requests).

        Informs
        -------
        request : str
            The name of a request.
        description : str
            Documentation for the named request.

        Returns
        -------
        success : {'ok', 'fail'}
            Whether sending the help succeeded.
        informs : int
            Number of #help inform messages sent.

        Examples
        --------
        ::

            ?help
            #help halt ...description...
            #help help ...description...
            ...
            !help ok 5

            ?help halt
            #help halt ...description...
            !help ok 1
        """
        handlers = self._request_handlers
        name = argument_text(msg, 0)
        if name is None:
            names = sorted(handlers)
        elif name in handlers:
            names = [name]
        else:
            return req.make_reply("fail", "Unknown request method.")
        # Answered on the loop while the handler thread may add or remove requests: take
        # one snapshot of the handlers rather than looking each name up again.
        docs = [(n, h.__doc__) for n in names if (h := handlers.get(n)) is not None]
        for n, doc in docs:
            req.inform(n, inspect.cleandoc(doc or ""))
        return req.make_reply("ok", len(docs))

    @has_katcp_protocol_flags([ProtocolFlags.REQUEST_TIMEOUT_HINTS])
    def request_request_timeout_hint(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Return timeout hints for requests.

        KATCP requests should generally take less than 5s to complete, but some requests
        are unavoidably slow. This request provides timeout hints that clients can use to
        select suitable request timeouts.

        Parameters
        ----------
        request : str, optional
            The name of the request to return a timeout hint for (the default is to return
            hints for all requests that have timeout hints). Must be an existing request if
            specified.

        Informs
        -------
        request : str
            The name of the request.
        suggested_timeout : float
            Suggested request timeout in seconds; 0 means no hint is available.

        Returns
        -------
        success : {'ok', 'fail'}
            Whether sending the hints succeeded.
        informs : int
            Number of #request-timeout-hint inform messages sent.

        Examples
        --------
        ::

            ?request-timeout-hint
            #request-timeout-hint very-slow-request 500.0
            !request-timeout-hint ok 1
        """
        handlers = self._request_handlers
        name = argument_text(msg, 0)

        def hint(handler: Any) -> float:
            value = getattr(handler, "_request_timeout_hint", None)
            if value is None:
                value = getattr(handler, "request_timeout_hint", None)
            return float(value or 0)

        if name is not None:
            if name not in handlers:
                raise FailReply("Unknown request method.")
            hints = {name: hint(handlers[name])}
        else:
            hints = {n: hint(h) for n, h in handlers.items() if hint(h)}
        for n in sorted(hints):
            req.inform(n, hints[n])
        return req.make_reply("ok", len(hints))

    def request_log_level(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Query or set the logging level of this client's ``#log`` informs.

        The level is per client, for the life of its connection: it never changes what
        other clients receive or what the server logs. This departs from spec section 6
        (one device-wide level) and from katcp-python (which also sets the server's Python
        logger level), so that one client cannot silence the others or the server's log;
        ``self.log.set_log_level`` still sets the default of clients that set none.
        Setting it needs the ``admin`` role under an access policy.

        Parameters
        ----------
        level : {'all', 'trace', 'debug', 'info', 'warn', 'error', 'fatal', 'off'}, optional
            Name of the logging level to set the device server to (the default is to leave
            the log level unchanged).

        Returns
        -------
        success : {'ok', 'fail'}
            Whether the request succeeded.
        level : {'all', 'trace', 'debug', 'info', 'warn', 'error', 'fatal', 'off'}
            The log level after processing the request.

        Examples
        --------
        ::

            ?log-level
            !log-level ok warn

            ?log-level info
            !log-level ok info
        """
        conn = req.client_connection
        if msg.arguments:
            try:
                level = self.log.level_from_name(msg.arguments[0])
            except ValueError as exc:
                raise FailReply(str(exc)) from None
            # Per client: other clients and the server's own Python logging are unchanged.
            conn.log_level = level
            self.log.note_client_level(level)
        level = self.log.level if conn.log_level is None else conn.log_level
        return req.make_reply("ok", self.log.level_name(level))

    @returns_future_on_loop
    async def request_restart(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Restart the device server.

        Returns
        -------
        success : {'ok', 'fail'}
            Whether scheduling the restart succeeded.

        Examples
        --------
        ::

            ?restart
            !restart ok
        """
        if self._restart_queue is None:
            raise FailReply("No restart queue registered -- cannot restart.")
        self._restart_queue.put_nowait(self)
        return req.make_reply("ok")

    @loop_safe
    def request_client_list(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Request the list of connected clients.

        The list of clients is sent as a sequence of #client-list informs. Answered at
        once, as katcp-python does (called directly it returns the reply), so its informs
        and reply come before those of any request sent after it.

        Informs
        -------
        addr : str
            The address of the client as host:port.
        identity : str, optional
            The common name of the client's TLS certificate, or ``anonymous``; only for
            admins, and only when the server has an access policy (a katcpx extension).
        role : {'read', 'control', 'admin'}, optional
            The client's role; sent with `identity`.

        Returns
        -------
        success : {'ok', 'fail'}
            Whether sending the client list succeeded.
        informs : int
            Number of #client-list inform messages sent.

        Examples
        --------
        ::

            ?client-list
            #client-list 127.0.0.1:53600
            !client-list ok 1
        """
        clients = list(self._connections)
        reveal = show_roles(self.access_policy, req.client_connection)
        for conn in clients:
            if reveal:
                req.inform(conn.address, conn.identity or "anonymous", str(conn.role))
            else:
                req.inform(conn.address)
        return req.make_reply("ok", len(clients))

    @minimum_katcp_version(5, 0)
    @loop_safe
    def request_version_list(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Request the list of versions of roles and subcomponents.

        Informs
        -------
        name : str
            Name of the role or component.
        version : str
            A string identifying the version of the component.
        build_state_or_serial_number : str
            A unique identifier for a particular instance of a component.

        Returns
        -------
        success : {'ok', 'fail'}
            Whether sending the version list succeeded.
        informs : int
            Number of #version-list inform messages sent.

        Examples
        --------
        ::

            ?version-list
            #version-list katcp-protocol 5.0-MI
            #version-list katcp-library katcpx-0.1.0 0.1.0
            #version-list katcp-device foodevice-1.0 foodevice-1.0.0rc1
            !version-list ok 3
        """
        versions: list[tuple[str, tuple[Any, Any]]] = [
            ("katcp-protocol", (str(self.PROTOCOL_INFO), None)),
            ("katcp-library", (f"katcpx-{VERSION_STR}", VERSION_STR)),
            ("katcp-device", (self.version(), self.build_state())),
        ]
        versions += sorted(self.extra_versions.items())
        for name, (version, build_state) in versions:
            if build_state is None:
                req.inform(name, version)
            else:
                req.inform(name, version, build_state)
        return req.make_reply("ok", len(versions))

    @loop_safe
    def request_sensor_list(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Request the list of sensors.

        The list of sensors is sent as a sequence of #sensor-list informs.

        Parameters
        ----------
        name : str, optional
            Name of the sensor to list (the default is to list all sensors). If name
            starts and ends with '/' it is treated as a regular expression and all sensors
            whose names contain the regular expression are returned.

        Informs
        -------
        name : str
            The name of the sensor being described.
        description : str
            Description of the named sensor.
        units : str
            Units for the value of the named sensor.
        type : str
            Type of the named sensor.
        params : list of str, optional
            Additional sensor parameters (type dependent).

        Returns
        -------
        success : {'ok', 'fail'}
            Whether sending the sensor list succeeded.
        informs : int
            Number of #sensor-list inform messages sent.

        Examples
        --------
        ::

            ?sensor-list
            #sensor-list psu.voltage PSU\\_voltage. V float 0.0 5.0
            !sensor-list ok 1
        """
        sensors = self._matching_sensors(msg)
        if sensors is None:  # a fail reply, not FailReply: katcp-python logs nothing here
            return req.make_reply("fail", "Unknown sensor name.")
        for name, sensor in sensors:
            req.inform(
                name, sensor.description, sensor.units, sensor.stype, *sensor.formatted_params
            )
        return req.make_reply("ok", len(sensors))

    @loop_safe
    def request_sensor_value(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Request the value of a sensor or sensors.

        A list of sensor values as a sequence of #sensor-value informs.

        Parameters
        ----------
        name : str, optional
            Name of the sensor to poll (the default is to send values for all sensors). If
            name starts and ends with '/' it is treated as a regular expression and all
            sensors whose names contain the regular expression are returned.

        Informs
        -------
        timestamp : float
            Timestamp of the sensor reading in seconds since the Unix epoch, or
            milliseconds for katcp versions <= 4.
        count : {1}
            Number of sensors described in this #sensor-value inform. Will always be one.
        name : str
            Name of the sensor whose value is being reported.
        value : object
            Value of the named sensor. Type depends on the type of the sensor.

        Returns
        -------
        success : {'ok', 'fail'}
            Whether sending the list of values succeeded.
        informs : int
            Number of #sensor-value inform messages sent.

        Examples
        --------
        ::

            ?sensor-value cpu.power.on
            #sensor-value 1244631611.415231 1 cpu.power.on nominal 0
            !sensor-value ok 1
        """
        sensors = self._matching_sensors(msg)
        if sensors is None:  # a fail reply, not FailReply: katcp-python logs nothing here
            return req.make_reply("fail", "Unknown sensor name.")
        # A full dump is thousands of informs: the sampling manager's formatter writes them
        # straight to wire bytes, from the cache #sensor-status also uses.
        # (Called directly on a server not running, there is no manager: format afresh.)
        manager = self._sampling
        formatter = (
            manager.formatter if manager is not None else ReadingFormatter(self.PROTOCOL_INFO.major)
        )
        value_line = formatter.value_line
        lines = [value_line(sensor, msg.mid) for _, sensor in sensors]
        if lines:
            lines.append(b"")
            req.inform_raw(b"\n".join(lines))
        return req.make_reply("ok", len(sensors))

    @loop_safe
    def request_watchdog(self, req: ClientRequestConnection, msg: Message) -> Message:
        """Check that the server is still alive.

        Returns
        -------
        success : {'ok'}

        Examples
        --------
        ::

            ?watchdog
            !watchdog ok
        """
        return req.make_reply("ok")


class AsyncDeviceServer(DeviceServer):
    """DeviceServer configured for async use.

    Same as a :class:`DeviceServer` with ``set_concurrency_options(thread_safe=False,
    handler_thread=False)`` and ``set_ioloop(IOLoop.current())``: requests are handled on
    the loop. Created inside a running loop it uses that loop; created outside one, the
    loop is chosen when :meth:`start` is called (the running loop, else the thread's
    current IOLoop) — katcp-python grabs ``IOLoop.current()`` at construction, which under
    asyncio is often a loop that never runs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_concurrency_options(thread_safe=False, handler_thread=False)
        self._deferred_ioloop = False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._deferred_ioloop = True
        else:
            self.set_ioloop()

    def set_ioloop(self, ioloop: Any = None) -> None:
        """Set the tornado IOLoop to use (default ``IOLoop.current()``); before :meth:`start`."""
        self._deferred_ioloop = False
        super().set_ioloop(ioloop)

    def start(self, timeout: float | None = None) -> None:
        """Start the server on its ioloop (see the class notes for which one); returns None."""
        if self._deferred_ioloop:
            self.set_ioloop()
        super().start(timeout)
