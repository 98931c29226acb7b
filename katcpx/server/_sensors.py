"""The sensor side of a device server: sensors, per-client sampling, versions, connections."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from typing import Any, ClassVar

from .._client_regex import ClientRegexError, compile_client_regex
from .._version import VERSION_STR
from ..errors import FailReply
from ..message import Message
from ..sensor import Sensor
from ._connection import ClientConnection
from ._dispatch import DeviceServerBase
from .logger import DeviceLogger
from .sampling_loop import SamplingManager, Strategy

__all__ = ["SensorDeviceServer", "argument_text", "construct_name_filter"]


def construct_name_filter(pattern: str | None) -> tuple[bool, Callable[[str], bool]]:
    """Return ``(exact, filter)`` for a sensor name pattern.

    None matches everything; ``/regex/`` matches names containing the regex; anything else
    must match exactly (and ``exact`` is True, so no match is an error). The regex runs on
    RE2 (:mod:`katcpx._client_regex`), in time linear in the name; back-references and
    look-around, which need backtracking, are refused with a fail reply.
    """
    if pattern is None:
        return False, lambda name: True
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        try:
            name_re = compile_client_regex(pattern[1:-1])
        except ClientRegexError as exc:
            raise FailReply(f"Invalid regular expression {pattern}: {exc}.") from None
        return False, lambda name: name_re.search(name) is not None
    return True, lambda name: name == pattern


def argument_text(msg: Message, index: int) -> str | None:
    """Argument `index` of `msg` as text (undecodable bytes replaced), or None if absent."""
    if len(msg.arguments) <= index:
        return None
    return msg.arguments[index].decode("utf-8", "replace")


class SensorDeviceServer(DeviceServerBase):
    """A :class:`DeviceServerBase` with sensors, per-client sampling and version information.

    :class:`DeviceServer` adds the standard requests; subclass that, not this.
    """

    #: Interface name, major and minor version.
    VERSION_INFO: ClassVar[tuple[Any, ...]] = ("device_stub", 0, 1)
    #: Build name, major, minor and extra version text.
    BUILD_INFO: ClassVar[tuple[Any, ...]] = ("name", 0, 1, "")
    UNSUPPORTED_REQUESTS_BY_MAJOR_VERSION: ClassVar[dict[int, set[str]]] = {4: {"version-list"}}
    SUPPORTED_PROTOCOL_MAJOR_VERSIONS: ClassVar[tuple[int, ...]] = (4, 5)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if self.PROTOCOL_INFO.major not in self.SUPPORTED_PROTOCOL_MAJOR_VERSIONS:
            raise ValueError(
                f"Device server only supports katcp protocol versions "
                f"{self.SUPPORTED_PROTOCOL_MAJOR_VERSIONS!r}, not {self.PROTOCOL_INFO.major!r} "
                f"as specified in self.PROTOCOL_INFO"
            )
        super().__init__(*args, **kwargs)
        self.log = DeviceLogger(self, python_logger=self._logger)
        self.extra_versions: dict[str, tuple[str, str | None]] = {}
        self._restart_queue: queue.Queue[Any] | None = None
        self._sensors: dict[str, Sensor] = {}
        # (name, sensor) pairs in name order, rebuilt only after sensors are added or removed.
        self._sorted_sensors: list[tuple[str, Sensor]] | None = None
        self._sampling: SamplingManager | None = None
        self.setup_sensors()

    # -- compatibility views ------------------------------------------------------------

    @property
    def _strategies(self) -> dict[ClientConnection, dict[Sensor, Strategy]]:
        """Client connection → {sensor: strategy} (katcp-python's attribute; loop thread)."""
        return self._sampling.by_client if self._sampling is not None else {}

    @property
    def _client_conns(self) -> set[ClientConnection]:
        return set(self._connections)

    def sampling_strategy_counts(self) -> dict[str, int]:
        """Active sampling strategies by name (``event``, ``period``, ...); any thread.

        A snapshot for metrics: taken without locking, it may miss a strategy set meanwhile.
        """
        return self._sampling.strategy_counts() if self._sampling is not None else {}

    # -- loop hooks ---------------------------------------------------------------------

    def _on_install(self, loop: asyncio.AbstractEventLoop) -> None:
        # The manager crosses threads (sensor updates from hardware threads) through the
        # server's binding, as everything else of the server does.
        self._sampling = SamplingManager(self.binding, major=self.PROTOCOL_INFO.major)

    def _on_uninstall(self) -> None:
        if self._sampling is not None:
            self._sampling.close()

    def _call_in_loop(self, func: Callable[..., Any], *args: Any) -> None:
        """Run `func` on the server's loop; with no running loop, right here.

        A server that is not running has no loop thread to race with, so the call runs
        in the caller's thread instead of being dropped.
        """
        binding = self.binding
        if binding.on_loop():
            func(*args)
            return
        loop = binding.loop
        running = loop is not None and loop.is_running()
        if running and (self._running.is_set() or self._starting) and binding.call(func, *args):
            return
        func(*args)  # not running, or closed just now: no loop left, so run it here

    # -- connections --------------------------------------------------------------------

    def on_client_connect(self, conn: ClientConnection) -> Any:
        """Send version information to the new client and ``#client-connected`` to others."""
        if self.PROTOCOL_INFO.major >= 5:
            conn.inform(
                Message.inform("version-connect", "katcp-protocol", str(self.PROTOCOL_INFO))
            )
            # Spec rev 5.1 section 4.2: library version, then its build state.
            conn.inform(
                Message.inform(
                    "version-connect", "katcp-library", f"katcpx-{VERSION_STR}", VERSION_STR
                )
            )
            conn.inform(
                Message.inform(
                    "version-connect", "katcp-device", self.version(), self.build_state()
                )
            )
        else:
            conn.inform(Message.inform("version", self.version()))
            conn.inform(Message.inform("build-state", self.build_state()))
        data = bytes(
            Message.inform("client-connected", f"New client connected from {conn.address}")
        )
        for other in self._connections:
            if other is not conn:
                other.send_bytes(data)
        return None

    def on_client_disconnect(
        self, client_conn: ClientConnection, msg: str, connection_valid: bool
    ) -> Any:
        """Drop the client's sampling strategies and send it ``#disconnect <msg>``."""
        self.clear_strategies(client_conn, remove_client=True)
        if connection_valid:
            client_conn.inform(Message.inform("disconnect", msg))
        return None

    async def _disconnect_async(self, conn: ClientConnection, reason: str, valid: bool) -> None:
        await super()._disconnect_async(conn, reason, valid)
        # Even if a subclass's on_client_disconnect skipped it, no strategy may outlive it.
        if self._sampling is not None:
            self._sampling.clear_client(conn)

    def clear_strategies(self, client_conn: ClientConnection, remove_client: bool = False) -> None:
        """Cancel the sampling strategies of `client_conn` (runs on the loop)."""
        if self._sampling is not None:
            self._call_in_loop(self._sampling.clear_client, client_conn, remove_client)

    # -- versions -----------------------------------------------------------------------

    def build_state(self) -> str:
        """Return build state string of the form name-major.minor[(a|b|rc)n]."""
        return "{}-{}.{}{}".format(*self.BUILD_INFO)

    def version(self) -> str:
        """Return a version string of the form type-major.minor."""
        return "{}-{}.{}".format(*self.VERSION_INFO)

    def set_restart_queue(self, restart_queue: queue.Queue[Any]) -> None:
        """Set the queue the server puts itself on when ``?restart`` is requested."""
        self._restart_queue = restart_queue

    # -- sensors ------------------------------------------------------------------------

    def setup_sensors(self) -> None:
        """Populate the dictionary of sensors; subclasses must override (``pass`` if none).

        Examples
        --------
        >>> class MyDevice(DeviceServer):
        ...     def setup_sensors(self):
        ...         self.add_sensor(Sensor(...))
        """
        raise NotImplementedError("Device server subclasses must implement setup_sensors.")

    def send_log_inform(self, level: int, msg: Message) -> None:
        """Send ``#log`` `msg` at KATCP `level` to each client whose log level lets it through.

        A client's level is what its ``?log-level`` set, else ``self.log.level``.
        Thread-safe: from other threads the message goes through the loop hand-off.
        """
        binding = self.binding
        if not binding.on_loop():
            binding.call(self.send_log_inform, level, msg)
            return
        data = bytes(msg)
        default = self.log.level
        for conn in self._connections:
            wanted = conn.log_level
            if level >= (default if wanted is None else wanted):
                conn.send_bytes(data)

    def add_sensor(self, sensor: Sensor) -> None:
        """Add a sensor; a running server sends ``#interface-changed sensor <name> added``.

        A sensor replacing another of the same name takes over every client's sampling
        strategy (same kind and parameters, started afresh, so each such client gets the
        new sensor's reading at once), and the inform says ``modified`` (spec 5.1 section
        4.2). A strategy that does not fit the new sensor (``differential`` on a sensor
        that is now a string) is dropped, with ``#log warn`` to that client and a warning in
        the server's log. Adding the sensor already there
        changes nothing and sends nothing. katcp-python leaves the strategies on the old
        object, which nothing updates any more, and sends no inform.
        """
        old = self._sensors.get(sensor.name)
        if old is sensor:
            return
        self._sensors[sensor.name] = sensor
        self._sorted_sensors = None
        if old is None:
            self._interface_changed("sensor", sensor.name, "added")
            return
        if self._sampling is not None:
            self._call_in_loop(self._move_strategies, old, sensor)
        self._interface_changed("sensor", sensor.name, "modified")

    def _move_strategies(self, old: Sensor, new: Sensor) -> None:
        assert self._sampling is not None
        for client, exc in self._sampling.replace_sensor(old, new):
            # Told, not silently dropped: the client and the server's log hear of it.
            text = f"Sensor {new.name} replaced: its strategy was dropped: {exc}"
            self._logger.warning("%s (client %s)", text, client.address)
            client.inform(self.create_log_inform("warn", text, "root"))

    def has_sensor(self, sensor_name: str) -> bool:
        """Whether the sensor with specified name is known."""
        return sensor_name in self._sensors

    def remove_sensor(self, sensor: Sensor | str) -> None:
        """Remove a sensor (object or name) and detach every client's strategy on it.

        Raises
        ------
        KeyError
            If there is no such sensor.
        """
        name = sensor if isinstance(sensor, str) else sensor.name
        removed = self._sensors.pop(name)
        self._sorted_sensors = None
        if self._sampling is not None:
            self._call_in_loop(self._sampling.remove_sensor, removed)
        self._interface_changed("sensor", name, "removed")

    def get_sensor(self, sensor_name: str) -> Sensor:
        """Fetch the sensor called `sensor_name` (``ValueError`` if unknown)."""
        sensor = self._sensors.get(sensor_name)
        if sensor is None:
            raise ValueError(f"Unknown sensor '{sensor_name}'.")
        return sensor

    def get_sensors(self) -> list[Sensor]:
        """Fetch a list of all sensors."""
        return list(self._sensors.values())

    def _matching_sensors(self, msg: Message) -> list[tuple[str, Sensor]] | None:
        """The sensors `msg`'s first argument names (all without one); None if unknown.

        Raises
        ------
        FailReply
            A bad client-sent regular expression.
        """
        exact, name_filter = construct_name_filter(argument_text(msg, 0))
        ordered = self._sorted_sensors
        if ordered is None:
            ordered = self._sorted_sensors = sorted(list(self._sensors.items()))
        if argument_text(msg, 0) is None:
            return list(ordered)
        sensors = [(n, s) for n, s in ordered if name_filter(n)]
        if exact and not sensors:
            return None
        return sensors
