"""Peer implementations for interoperability tests: katcp-python 0.9.3 and aiokatcp.

katcp-python 0.9.3 needs tornado < 5, so it runs as a subprocess from its own venv
(:func:`peers.venv.ensure_katcp_python_venv`). aiokatcp is a test dependency and runs
in-process (:class:`peers.aio_server.AiokatcpServerThread`). Both peer servers expose the same
sensors and requests, listed in :mod:`peers.catalogue`.

Typical use (the fixtures ``katcp_python`` and ``aiokatcp_server`` live in ``tests/conftest.py``)::

    from peers import KatcpPythonClient, KatcpPythonServer

    def test_something(katcp_python):
        with KatcpPythonServer(katcp_python, protocol="5.1", n_float=10) as server:
            ...  # connect a katcpx client to server.address
            server.set_sensor("float.3", 2.5)

    def test_other(katcp_python, my_katcpx_server_address):
        host, port = my_katcpx_server_address
        with KatcpPythonClient(katcp_python, host, port) as client:
            reply, informs = client.request("sensor-value", "float.0")
            assert reply.arguments[0] == b"ok"

Control protocol of the subprocess peers
----------------------------------------
The test process and a peer script (``kp_server.py``, ``kp_client.py``) talk in JSON lines:
one JSON object per line, UTF-8, in both directions.

* **Start-up.** The script's first stdout line is an event: ``{"event": "ready", ...}``
  (server: ``host``, ``port``, ``protocol``, ``katcp_version``; client: ``protocol``), or
  ``{"event": "error", "error": text}`` followed by exit status 1.
* **Commands.** The test writes ``{"cmd": name, "id": any, ...fields}`` on stdin. The script
  answers every command with exactly one line, in order, echoing ``id``: ``{"id": ..., "ok":
  true, ...result}`` or ``{"id": ..., "ok": false, "error": text}``. Unknown commands get an
  error answer, never a crash.
* **Stopping.** ``{"cmd": "stop"}`` is answered and then the script stops its katcp object and
  exits with status 0; closing stdin (EOF) does the same without an answer.
* **KATCP arguments** travel as a JSON string when they are valid UTF-8, else as
  ``{"hex": "<hex digits>"}``; they are always ``bytes`` on the Python side.
* **Messages** travel as ``{"mtype": "request"|"reply"|"inform", "name": str, "args": [...],
  "mid": str | null}`` and become :class:`PeerMessage`.
* Diagnostics go to stderr, which the helpers collect and attach to every :class:`PeerError`.

Command reference: ``kp_server.py`` — ``ping``, ``set_sensor``, ``mass_inform``, ``stop``;
``kp_client.py`` — ``request``, ``wait_informs``, ``protocol``, ``stop``.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from ._jsonio import decode_arg, encode_arg
from .aio_server import AiokatcpServerThread, PeerAddress
from .catalogue import DEFAULT_FLOAT_SENSORS
from .raw import RawConnection
from .venv import PeerVenvError, ensure_katcp_python_venv

__all__ = [
    "AiokatcpServerThread",
    "KatcpPythonClient",
    "KatcpPythonServer",
    "PeerAddress",
    "PeerError",
    "PeerMessage",
    "PeerReply",
    "PeerVenvError",
    "RawConnection",
    "ensure_katcp_python_venv",
]

PEERS_DIR = Path(__file__).resolve().parent
_EOF = object()


class PeerError(RuntimeError):
    """A peer subprocess failed, timed out or answered a command with an error."""


class PeerMessage(NamedTuple):
    """A KATCP message as seen by a katcp-python peer."""

    mtype: str
    name: str
    arguments: list[bytes]
    mid: str | None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PeerMessage:
        """Decode the JSON form used by the peer scripts."""
        return cls(obj["mtype"], obj["name"], [decode_arg(a) for a in obj["args"]], obj["mid"])

    def reply_ok(self) -> bool:
        """Return whether this is a reply whose first argument is ``ok``."""
        return self.mtype == "reply" and bool(self.arguments) and self.arguments[0] == b"ok"


class PeerReply(NamedTuple):
    """Result of :meth:`KatcpPythonClient.request`: the reply and the informs before it."""

    reply: PeerMessage
    informs: list[PeerMessage]


def _to_json_arg(arg: object) -> Any:
    if isinstance(arg, bytes):
        return encode_arg(arg)
    if isinstance(arg, bool):
        return "1" if arg else "0"
    return str(arg)


class _JsonLineProcess:
    """A peer script run with the venv python, spoken to in JSON lines (see module doc)."""

    def __init__(self, python: Path | str, script: str, args: list[str], timeout: float) -> None:
        self._timeout = timeout
        self._argv = [str(python), "-u", str(PEERS_DIR / script), *args]
        self._stdout: queue.Queue[Any] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        self._next_id = 0
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # The test process's PYTHONPATH may point at tornado 6; keep it out of the old venv.
        env.pop("PYTHONPATH", None)
        self._proc = subprocess.Popen(
            self._argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=env,
        )
        self._readers = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self._stdout.put(json.loads(line))
            except ValueError:
                self._stderr.append(f"[non-JSON stdout] {line.rstrip()}")
        self._stdout.put(_EOF)

    def _pump_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip("\n"))

    @property
    def stderr_text(self) -> str:
        """The last lines the peer wrote to stderr."""
        return "\n".join(self._stderr)

    def error(self, text: str) -> PeerError:
        """Build a :class:`PeerError` that includes the peer's command line and stderr."""
        if self._proc.poll() is not None:
            # The peer is gone: let the reader collect the rest of its stderr first.
            self._readers[1].join(self._timeout)
        return PeerError(
            f"{text}\npeer: {' '.join(self._argv)}\n--- peer stderr ---\n{self.stderr_text}"
        )

    def read(self, timeout: float | None = None) -> dict[str, Any]:
        """Return the next JSON object from the peer's stdout."""
        wait = self._timeout if timeout is None else timeout
        try:
            item = self._stdout.get(timeout=wait)
        except queue.Empty:
            raise self.error(f"no answer from the peer within {wait} s") from None
        if item is _EOF:
            self._stdout.put(_EOF)  # later reads fail the same way
            code = self._proc.wait(timeout=self._timeout)
            raise self.error(f"peer exited (status {code})")
        return item

    def send(self, obj: dict[str, Any]) -> None:
        """Write one JSON command line to the peer."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(obj) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise self.error(f"cannot write to the peer: {exc}") from exc

    def call(self, cmd: str, wait: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send command ``cmd`` with ``fields`` and return its successful answer.

        ``wait`` is how long to wait for the answer (default: the start-up timeout).

        Raises
        ------
        PeerError
            On timeout, peer exit, or an ``"ok": false`` answer.
        """
        self._next_id += 1
        self.send({"cmd": cmd, "id": self._next_id, **fields})
        answer = self.read(wait)
        if answer.get("id") != self._next_id:
            raise self.error(f"answer {answer!r} does not match command {cmd!r}")
        if not answer.get("ok"):
            raise self.error(f"command {cmd!r} failed: {answer.get('error')}")
        return answer

    def close(self) -> int:
        """Ask the peer to stop (stdin EOF), kill it if it does not, and return its status."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            code = self._proc.wait(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        for reader in self._readers:
            reader.join(self._timeout)
        return code


class _PeerContext:
    _proc: _JsonLineProcess | None = None
    #: Exit status of the subprocess once stopped (``None`` while running or before start).
    returncode: int | None = None

    @property
    def process(self) -> _JsonLineProcess:
        if self._proc is None:
            raise PeerError(f"{type(self).__name__} is not running (use it as a context manager)")
        return self._proc

    @property
    def stderr_text(self) -> str:
        """The last lines the peer wrote to stderr."""
        return self.process.stderr_text

    def _start(
        self, python: Path | str | None, script: str, args: list[str], timeout: float
    ) -> dict[str, Any]:
        exe = ensure_katcp_python_venv() if python is None else python
        self._proc = _JsonLineProcess(exe, script, args, timeout)
        try:
            event = self._proc.read()
            if event.get("event") != "ready":
                raise self._proc.error(f"peer did not start: {event!r}")
        except BaseException:
            self.close()
            raise
        return event

    def close(self) -> None:
        """Stop the peer subprocess (idempotent)."""
        if self._proc is not None:
            self.returncode = self._proc.close()
            self._proc = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class KatcpPythonServer(_PeerContext):
    """A katcp-python 0.9.3 ``DeviceServer`` in a subprocess (context manager).

    Parameters
    ----------
    python : path, optional
        The venv python (the ``katcp_python`` fixture); built on demand if omitted.
    n_float : int
        Number of float sensors ``float.0`` ... besides the fixed ones (see
        :mod:`peers.catalogue`).
    protocol : {"5.0", "5.1", "4"}
        What the server announces: ``"5.0"`` is katcp-python's default ``5.0-IM`` (it sorts the flags); ``"5.1"``
        is ``5.1-BIMT`` (request timeout hints, bulk sensor sampling); ``"4"`` is a KATCP v4
        server (``#version``/``#build-state`` on connect, no message ids, ms timestamps).
    host : str
        Listening address; the port is chosen by the OS.
    timeout : float
        Seconds to wait for start-up and for each command.

    Attributes
    ----------
    host, port : str, int
        Where the server listens (also :attr:`address`).
    protocol_info : str
        The announced version string, e.g. ``"5.0-IM"``.
    """

    def __init__(
        self,
        python: Path | str | None = None,
        *,
        n_float: int = DEFAULT_FLOAT_SENSORS,
        protocol: str = "5.0",
        host: str = "127.0.0.1",
        timeout: float = 30.0,
    ) -> None:
        self._python = python
        self._args = ["--host", host, "--n-float", str(n_float), "--protocol", protocol]
        self._timeout = timeout
        self.host = host
        self.port = 0
        self.protocol_info = ""

    @property
    def address(self) -> PeerAddress:
        """``(host, port)`` of the running server."""
        return PeerAddress(self.host, self.port)

    def __enter__(self) -> KatcpPythonServer:
        event = self._start(self._python, "kp_server.py", self._args, self._timeout)
        self.host, self.port = event["host"], int(event["port"])
        self.protocol_info = event["protocol"]
        return self

    def ping(self) -> None:
        """Round-trip a command (proves the subprocess is alive)."""
        self.process.call("ping")

    def set_sensor(
        self, name: str, value: Any, status: str = "nominal", timestamp: float | None = None
    ) -> None:
        """Set a sensor on the server (on its ioloop) and wait until that is done.

        Parameters
        ----------
        name : str
            Sensor name.
        value
            JSON-able value of the sensor's type (discrete: the value string).
        status : str
            KATCP status name (``nominal``, ``warn``, ``error``, ...).
        timestamp : float, optional
            Reading time in seconds since the epoch; now if omitted.
        """
        self.process.call("set_sensor", name=name, value=value, status=status, timestamp=timestamp)

    def mass_inform(self, name: str, *args: object) -> None:
        """Send inform ``#name args...`` to every connected client."""
        self.process.call("mass_inform", name=name, args=[_to_json_arg(a) for a in args])


class KatcpPythonClient(_PeerContext):
    """A katcp-python 0.9.3 ``BlockingClient`` in a subprocess (context manager).

    Entering connects to ``host:port`` and waits for the server's protocol information.

    Parameters
    ----------
    python : path, optional
        The venv python (the ``katcp_python`` fixture); built on demand if omitted.
    host, port : str, int
        Server to connect to.
    timeout : float
        Seconds to wait for connecting and for each command (a request additionally gets its
        own timeout).

    Attributes
    ----------
    protocol_info : str
        The server's version string as the client understood it, e.g. ``"5.0-IM"``.
    """

    def __init__(
        self, python: Path | str | None, host: str, port: int, *, timeout: float = 30.0
    ) -> None:
        self._python = python
        self._args = [host, str(port), "--timeout", str(timeout)]
        self._timeout = timeout
        self.protocol_info = ""

    def __enter__(self) -> KatcpPythonClient:
        event = self._start(self._python, "kp_client.py", self._args, self._timeout)
        self.protocol_info = event["protocol"]
        return self

    def request(
        self, name: str, *args: object, timeout: float = 5.0, use_mid: bool | None = None
    ) -> PeerReply:
        """Send ``?name args...`` with ``blocking_request`` and return the reply and informs.

        Parameters
        ----------
        name : str
            Request name.
        *args
            Arguments: ``bytes`` are sent as they are, ``bool`` as ``1``/``0``, anything else
            as ``str(arg)``.
        timeout : float
            katcp-python's request timeout (it replies ``fail`` on expiry).
        use_mid : bool, optional
            Force message ids on or off; katcp-python's default is to use them when the
            server supports them.

        Returns
        -------
        PeerReply
            ``(reply, informs)``.
        """
        answer = self.process.call(
            "request",
            wait=timeout + self._timeout,
            name=name,
            args=[_to_json_arg(a) for a in args],
            timeout=timeout,
            use_mid=use_mid,
        )
        return PeerReply(
            PeerMessage.from_json(answer["reply"]),
            [PeerMessage.from_json(m) for m in answer["informs"]],
        )

    def wait_informs(self, name: str, count: int = 1, timeout: float = 5.0) -> list[PeerMessage]:
        """Return the first ``count`` unsolicited ``#name`` informs, waiting up to ``timeout``.

        Informs that are not part of a request reply (``#sensor-status``, ``#version-connect``,
        ``#interface-changed``, ...) are recorded from the moment of connection; this takes
        them out of the record in arrival order.

        Raises
        ------
        PeerError
            If fewer than ``count`` arrive in time.
        """
        answer = self.process.call(
            "wait_informs", wait=timeout + self._timeout, name=name, count=count, timeout=timeout
        )
        return [PeerMessage.from_json(m) for m in answer["informs"]]

    def protocol(self) -> dict[str, Any]:
        """Return ``{"protocol": "5.0-IM", "versions": {name: [version, build...]}}``."""
        answer = self.process.call("protocol")
        return {"protocol": answer["protocol"], "versions": answer["versions"]}
