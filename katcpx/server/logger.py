"""KATCP logging: :class:`DeviceLogger` and a :class:`logging.Handler` that sends ``#log``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from .._compat import Python2Next
from ..errors import FailReply
from ..message import Message

if TYPE_CHECKING:
    from ._dispatch import DeviceServerBase

__all__ = ["DeviceLogger", "KatcpLogHandler"]


class DeviceLogger(Python2Next):
    """Object for logging messages from a DeviceServer.

    Log messages are logged at a particular level and under a particular name. Names use
    dotted notation to form a virtual hierarchy of loggers with the device. Messages at or
    above the current level (``warn`` initially) go to every client as ``#log``.

    Parameters
    ----------
    device_server : DeviceServerBase
        The device server this logger should use for sending out logs.
    root_logger : str
        The name of the root logger.
    python_logger : logging.Logger, optional
        Also log every message here, and keep its level in step with :meth:`set_log_level`.
    """

    # Level values index LEVELS, so the two must stay in the same order.
    ALL, TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF = range(8)

    #: Logging level names.
    LEVELS: ClassVar[list[str]] = ["all", "trace", "debug", "info", "warn", "error", "fatal", "off"]

    #: KATCP level to Python logging level.
    PYTHON_LEVEL: ClassVar[dict[int, int]] = {
        TRACE: 0,
        DEBUG: logging.DEBUG,
        INFO: logging.INFO,
        WARN: logging.WARNING,
        ERROR: logging.ERROR,
        FATAL: logging.CRITICAL,
        OFF: logging.CRITICAL + 10,
    }

    def __init__(
        self,
        device_server: DeviceServerBase,
        root_logger: str = "root",
        python_logger: logging.Logger | None = None,
    ) -> None:
        self._device_server = device_server
        self._python_logger = python_logger
        self._log_level = self.WARN
        self._root_logger_name = root_logger
        # Lowest level any client asked for: logging below it and below the server's level
        # formats nothing.
        self._lowest_client_level = self.OFF
        # Until some client sets its own ?log-level, every client follows `level`, and #log
        # goes out through mass_inform exactly as in katcp-python.
        self._clients_have_levels = False

    @property
    def level(self) -> int:
        """The current KATCP level constant."""
        return self._log_level

    @property
    def lowest_client_level(self) -> int:
        """Lowest ``?log-level`` any client set (``OFF`` when none did)."""
        return self._lowest_client_level

    def level_name(self, level: int | None = None) -> str:
        """Return the name of `level`, or of the current level when None."""
        if level is None:
            level = self._log_level
        return self.LEVELS[level]

    def level_from_name(self, level_name: str | bytes) -> int:
        """Return the level constant called `level_name` (``ValueError`` if unknown)."""
        name = (
            level_name.decode("utf-8", "replace") if isinstance(level_name, bytes) else level_name
        )
        try:
            return self.LEVELS.index(name)
        except ValueError:
            raise ValueError(f"Unknown logging level name '{name}'") from None

    def set_log_level(self, level: int) -> None:
        """Set the logging level (a level constant)."""
        if level not in range(len(self.LEVELS)):
            raise FailReply(f"Unknown logging level '{level}'")
        self._log_level = level
        if self._python_logger is not None:
            self._python_logger.setLevel(self.PYTHON_LEVEL.get(level, 0))

    def set_log_level_by_name(self, level_name: str | bytes) -> None:
        """Set the logging level by name (``ValueError`` if unknown)."""
        self.set_log_level(self.level_from_name(level_name))

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log a message and inform all clients.

        Parameters
        ----------
        level : int
            The level constant to log at.
        msg : str
            Format string; the text is ``msg % args``.
        *args
            Arguments for `msg`.
        **kwargs
            ``name`` (logger name, default the root logger) and ``timestamp`` (seconds,
            default now).
        """
        timestamp = kwargs.get("timestamp")
        if self._python_logger is not None:
            python_msg = msg if timestamp is None else f"katcp timestamp: {timestamp!r} {msg}"
            self._python_logger.log(self.PYTHON_LEVEL[level], python_msg, *args)
        if level >= min(self._log_level, self._lowest_client_level):
            name = kwargs.get("name") or self._root_logger_name
            try:
                text = msg % args if args else msg
            except (TypeError, ValueError):
                text = f"{msg} {args}".strip()
            self.send(
                level,
                self._device_server.create_log_inform(
                    self.level_name(level), text, name, timestamp=timestamp
                ),
            )

    def note_client_level(self, level: int) -> None:
        """Record that some client asked for ``#log`` from `level` up (its ``?log-level``)."""
        self._lowest_client_level = min(self._lowest_client_level, level)
        self._clients_have_levels = True

    def send(self, level: int, msg: Message) -> None:
        """Send ``#log`` `msg` at `level` to the clients whose log level lets it through.

        Each client's ``?log-level`` is its own (a katcpx difference: katcp-python's
        ``?log-level`` sets one level for every client and for the server's Python logger).
        Clients that never set one follow :attr:`level`. Thread-safe.
        """
        server = self._device_server
        per_client = getattr(server, "send_log_inform", None)
        if per_client is not None and self._clients_have_levels:
            per_client(level, msg)
        elif level >= self._log_level:
            server.mass_inform(msg)

    def trace(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log a trace message."""
        self.log(self.TRACE, msg, *args, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log a debug message."""
        self.log(self.DEBUG, msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log an info message."""
        self.log(self.INFO, msg, *args, **kwargs)

    def warn(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log a warning message."""
        self.log(self.WARN, msg, *args, **kwargs)

    warning = warn

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log an error message."""
        self.log(self.ERROR, msg, *args, **kwargs)

    def fatal(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log a fatal error message."""
        self.log(self.FATAL, msg, *args, **kwargs)

    @classmethod
    def log_to_python(cls, logger: logging.Logger, msg: Message) -> None:
        """Log a ``#log`` message received from a device to a Python logger."""
        level, timestamp, name, message = msg.arguments[:4]
        levels = {
            b"trace": 0,
            b"debug": logging.DEBUG,
            b"info": logging.INFO,
            b"warn": logging.WARNING,
            b"error": logging.ERROR,
            b"fatal": logging.CRITICAL,
        }
        logger.log(
            levels.get(level, logging.INFO),
            "%s %s: %s",
            timestamp.decode("utf-8", "replace"),
            name.decode("utf-8", "replace"),
            message.decode("utf-8", "replace"),
        )


class KatcpLogHandler(logging.Handler):
    """A :class:`logging.Handler` that sends records to every client as ``#log``.

    Records below the server's KATCP log level (``?log-level``, held by the server's
    :class:`DeviceLogger` ``server.log``) are not sent. Safe to use from any thread.

    Parameters
    ----------
    server : DeviceServerBase
        The server whose clients get the ``#log`` informs.
    name : str, optional
        KATCP logger name to use; default the record's logger name.
    level : int, optional
        Python level threshold of the handler itself.

    Notes
    -----
    Do not attach it to the `python_logger` of the server's :class:`DeviceLogger`:
    messages logged through the DeviceLogger would then be sent twice.
    """

    _KATCP_LEVELS: ClassVar[list[tuple[int, str]]] = [
        (logging.CRITICAL, "fatal"),
        (logging.ERROR, "error"),
        (logging.WARNING, "warn"),
        (logging.INFO, "info"),
        (logging.DEBUG, "debug"),
    ]

    def __init__(
        self, server: DeviceServerBase, name: str | None = None, level: int = logging.NOTSET
    ) -> None:
        super().__init__(level)
        self.server = server
        self.katcp_name = name

    @classmethod
    def katcp_level_name(cls, levelno: int) -> str:
        """The KATCP level name for a Python level number."""
        for threshold, name in cls._KATCP_LEVELS:
            if levelno >= threshold:
                return name
        return "trace"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level_name = self.katcp_level_name(record.levelno)
            device_log = getattr(self.server, "log", None)
            level = DeviceLogger.LEVELS.index(level_name)
            if isinstance(device_log, DeviceLogger):
                if level < min(device_log.level, device_log.lowest_client_level):
                    return
            # Only the message: tracebacks (with server file paths) stay in the server's log.
            text = record.getMessage()
            msg = self.server.create_log_inform(
                level_name, text, self.katcp_name or record.name, timestamp=record.created
            )
            if isinstance(device_log, DeviceLogger):
                device_log.send(level, msg)
            else:
                self.server.mass_inform(msg)
        except Exception:
            self.handleError(record)
