"""A small katcpx device server for the katcp-cmd tests, runnable as a subprocess.

``python tests/cmd/device.py [PORT]`` prints ``PORT <n>`` once it listens, then serves until
killed. Typing lines on its stdin drives it: ``set NAME VALUE`` sets a sensor, ``inform NAME
ARG...`` sends an inform to every client, ``add-sensor NAME`` adds a sensor (and with it an
``#interface-changed``).
"""

from __future__ import annotations

import sys

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

    def request_progress(self, req, msg):
        """Send two informs, then reply (progress)."""
        req.inform("step one")
        req.inform("step two")
        return Message.reply("progress", "ok")


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = TestDevice("127.0.0.1", port)
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
        elif words[0] == "add-sensor":
            server.add_sensor(Sensor.integer(words[1], "added", "", default=0))
            server.mass_inform(Message.inform("interface-changed", "sensor", words[1], "added"))
        print("DONE", words[0], flush=True)
    server.stop()
    server.join(timeout=5)


if __name__ == "__main__":
    main()
