"""katcp-python 0.9.3 DeviceServer peer, driven by JSON lines on stdin/stdout.

Runs inside the katcp-python venv (see :mod:`peers.venv`); never imported by the test process.
Sensors and requests come from :mod:`catalogue`. Usage::

    python kp_server.py [--host 127.0.0.1] [--port 0] [--n-float 4] [--protocol 5.0|5.1|4]

Once listening it prints ``{"event": "ready", "host": ..., "port": ..., "protocol": ...}``.
Commands: ``ping``; ``set_sensor`` (``name``, ``value``, optional ``status`` name and
``timestamp``); ``mass_inform`` (``name``, ``args``); ``stop``. Stdin EOF also stops it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import sys
from typing import Any

import katcp
from _jsonio import decode_arg, emit, serve_commands
from catalogue import DEFAULT_FAIL_MESSAGE, DEFAULT_FLOAT_SENSORS, HINTED_TIMEOUT, sensor_specs
from katcp import AsyncReply, DeviceServer, FailReply, Message, ProtocolFlags, Sensor
from katcp.kattypes import request_timeout_hint

_PROTOCOLS = {
    "4": ProtocolFlags(4, 0, {ProtocolFlags.MULTI_CLIENT}),
    # katcp-python's own default.
    "5.0": ProtocolFlags(5, 0, {ProtocolFlags.MULTI_CLIENT, ProtocolFlags.MESSAGE_IDS}),
    "5.1": ProtocolFlags(
        5,
        1,
        {
            ProtocolFlags.MULTI_CLIENT,
            ProtocolFlags.MESSAGE_IDS,
            ProtocolFlags.REQUEST_TIMEOUT_HINTS,
            ProtocolFlags.BULK_SET_SENSOR_SAMPLING,
        },
    ),
}


def make_server_class(protocol: str) -> type:
    """Return a DeviceServer subclass announcing ``protocol``."""

    class PeerServer(DeviceServer):
        VERSION_INFO = ("katcpx-peer", 1, 0)
        BUILD_INFO = ("katcpx-peer", 1, 0, "")
        PROTOCOL_INFO = _PROTOCOLS[protocol]

        def __init__(self, host: str, port: int, n_float: int) -> None:
            self._n_float = n_float
            super().__init__(host, port)

        def setup_sensors(self) -> None:
            for name, stype, description, units, params, value in sensor_specs(self._n_float):
                sensor = Sensor(
                    Sensor.parse_type(stype), name, description, units, params, default=value
                )
                sensor.set_value(value, Sensor.NOMINAL)
                self.add_sensor(sensor)

        def request_echo(self, req: Any, msg: Any) -> Any:
            """Reply ok with the request's arguments."""
            return req.make_reply("ok", *msg.arguments)

        def request_fail_with(self, req: Any, msg: Any) -> Any:
            """Fail with the given message."""
            text = msg.arguments[0].decode("utf-8") if msg.arguments else DEFAULT_FAIL_MESSAGE
            raise FailReply(text)

        def request_slow_echo(self, req: Any, msg: Any) -> Any:
            """Inform 'started', then reply ok with the arguments after a delay."""
            if not msg.arguments:
                raise FailReply("slow-echo needs a delay")
            delay = float(msg.arguments[0])
            args = msg.arguments[1:]
            req.inform("started")
            # Handlers run in katcp-python's handler thread; timers belong on the ioloop.
            self.ioloop.add_callback(
                lambda: self.ioloop.call_later(delay, lambda: req.reply("ok", *args))
            )
            raise AsyncReply()

        @request_timeout_hint(HINTED_TIMEOUT)
        def request_hinted(self, req: Any, msg: Any) -> Any:
            """Reply ok; has a request timeout hint."""
            return req.make_reply("ok")

        def request_inform_burst(self, req: Any, msg: Any) -> Any:
            """Send count #inform-burst informs, then reply ok count."""
            count = int(msg.arguments[0]) if msg.arguments else 0
            for i in range(count):
                req.inform(i)
            return req.make_reply("ok", count)

    return PeerServer


def on_ioloop(server: Any, func: Any) -> Any:
    """Run ``func()`` on the server's ioloop thread and return its result."""
    done: concurrent.futures.Future = concurrent.futures.Future()

    def call() -> None:
        try:
            done.set_result(func())
        except Exception as exc:
            done.set_exception(exc)

    server.ioloop.add_callback(call)
    return done.result(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--n-float", type=int, default=DEFAULT_FLOAT_SENSORS)
    parser.add_argument("--protocol", choices=sorted(_PROTOCOLS), default="5.0")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    server = make_server_class(args.protocol)(args.host, args.port, args.n_float)
    server.setDaemon(True)
    server.start(timeout=10)
    host, port = server.bind_address
    emit(
        {
            "event": "ready",
            "host": host,
            "port": port,
            "protocol": str(server.PROTOCOL_INFO),
            "katcp_version": katcp.__version__,
        }
    )

    def set_sensor(cmd: dict) -> dict:
        sensor = server.get_sensor(cmd["name"])
        status = Sensor.STATUS_NAMES[cmd.get("status", "nominal")]
        on_ioloop(
            server, lambda: sensor.set_value(cmd["value"], status, timestamp=cmd.get("timestamp"))
        )
        return {}

    def mass_inform(cmd: dict) -> dict:
        msg = Message.inform(cmd["name"], *[decode_arg(a) for a in cmd.get("args", [])])
        server.mass_inform(msg)
        return {}

    try:
        serve_commands(
            {"ping": lambda cmd: {}, "set_sensor": set_sensor, "mass_inform": mass_inform},
            stop_cmds=("stop",),
        )
    finally:
        server.stop(timeout=5)
        server.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
