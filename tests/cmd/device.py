"""A small katcpx device server for the katcp-cmd tests, runnable as a subprocess.

``python tests/cmd/device.py [PORT] [v4]`` (v4: a KATCP v4 server) prints ``PORT <n>`` once it listens, then serves until
killed. Typing lines on its stdin drives it: ``set NAME VALUE`` sets a sensor, ``inform NAME
ARG...`` sends an inform to every client, ``add-sensor NAME`` adds a sensor (and with it an
``#interface-changed``), ``remove-sensor NAME`` removes one.
"""

from __future__ import annotations

import sys
import time

from katcpx.flags import ProtocolFlags
from katcpx.message import Message
from katcpx.sensor import Sensor
from katcpx.server import DeviceServer


class TestDevice(DeviceServer):
    """A device with a few sensors and requests exercising quoting, fail and slow replies."""

    VERSION_INFO = ("katcp-cmd-test", 1, 0)
    BUILD_INFO = ("katcp-cmd-test", 1, 0, "")

    def setup_sensors(self) -> None:
        self.add_sensor(Sensor.float("cpu.temp", "CPU temperature", "degC", default=42.5))
        self.add_sensor(Sensor.integer("fan.speed", "Fan speed", "rpm", default=1200))
        self.add_sensor(Sensor.boolean("power.ok", "Power supply healthy", "", default=True))
        self.add_sensor(Sensor.string("device.name", "Device name", "", default="test rig"))

    def request_echo(self, req, msg):
        """Echo the arguments back (echo [arg...])."""
        return Message.reply("echo", "ok", *msg.arguments)

    def request_broken(self, req, msg):
        """Always fail (broken)."""
        return Message.reply("broken", "fail", "it is broken")

    def request_set_name(self, req, msg):
        """Set device.name to any text, control characters included (set-name TEXT)."""
        self.get_sensor("device.name").set_value(msg.arguments[0].decode("utf-8", "replace"))
        return Message.reply("set-name", "ok")

    def request_set_clock(self, req, msg):
        """Set clock.set (v4 device only) to a time in seconds (set-clock SECONDS)."""
        self.get_sensor("clock.set").set_value(float(msg.arguments[0]))
        return Message.reply("set-clock", "ok")

    def request_nasty(self, req, msg):
        """Terminal escapes \x1b]0;PWNED\x07 in help\x1b[2J text (nasty).

        Adds a sensor whose name, description, units and value hold control characters,
        logs and informs control characters, then fails with them.
        """
        if self._sensors_get("nasty") is None:
            self.add_sensor(
                Sensor.string("nasty", "desc\x1b]0;T\x07", "u\x9b", default="v\x1bw\x7f")
            )
        req.inform("inform\x1b[31m\r\nspoof")
        self.mass_inform(Message.inform("log", "warn", str(time.time()), "root", "log\x1b[2J\x00"))
        return Message.reply("nasty", "fail", "fail\x1b]0;PWNED\x07")

    def _sensors_get(self, name):
        return self.get_sensor(name) if self.has_sensor(name) else None

    def request_progress(self, req, msg):
        """Send two informs, then reply (progress)."""
        req.inform("step one")
        req.inform("step two")
        return Message.reply("progress", "ok")


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    device_class = TestDevice
    if sys.argv[2:] == ["v4"]:

        class V4Device(TestDevice):
            PROTOCOL_INFO = ProtocolFlags(4, 0, set())

            def setup_sensors(self) -> None:
                super().setup_sensors()
                self.add_sensor(Sensor.timestamp("clock.set", "Time set", "", default=0.0))

        device_class = V4Device
    server = device_class("127.0.0.1", port)
    server.set_concurrency_options(thread_safe=True, handler_thread=False)
    server.start(timeout=5)
    print("PORT", server.bind_address[1], flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "set":
            sensor = server.get_sensor(words[1])
            sensor.set_value(sensor.parse_value(words[2].encode()))
        elif words[0] == "inform":
            server.mass_inform(Message.inform(words[1], *words[2:]))
        elif words[0] == "remove-sensor":
            server.remove_sensor(words[1])
            server.mass_inform(Message.inform("interface-changed", "sensor", words[1], "removed"))
        elif words[0] == "add-sensor":
            server.add_sensor(Sensor.integer(words[1], "added", "", default=0))
            server.mass_inform(Message.inform("interface-changed", "sensor", words[1], "added"))
        print("DONE", words[0], flush=True)
    server.stop()
    server.join(timeout=5)


if __name__ == "__main__":
    main()
