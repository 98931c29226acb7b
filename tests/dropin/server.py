"""A device server written for katcp-python 0.9.3, run by the drop-in test under both libraries.

``python server.py katcpx`` imports katcpx as katcp; ``python server.py katcp`` (inside the
katcp-python venv) imports katcp itself. Nothing else differs. It prints ``{"port": N}`` once
listening and runs until its stdin closes.
"""

import importlib
import json
import sys

katcp = importlib.import_module("katcpx" if sys.argv[1:] == ["katcpx"] else "katcp")
kattypes = importlib.import_module(katcp.__name__ + ".kattypes")
Float, Int, Str, Discrete = kattypes.Float, kattypes.Int, kattypes.Str, kattypes.Discrete
request, return_reply = kattypes.request, kattypes.return_reply
Sensor, Message, FailReply = katcp.Sensor, katcp.Message, katcp.FailReply


class Thermostat(katcp.DeviceServer):
    VERSION_INFO = ("thermostat", 1, 0)
    BUILD_INFO = ("thermostat", 1, 0, "")

    def setup_sensors(self):
        self.setpoint = Sensor.float("setpoint", "Target temperature", "degC", [0.0, 100.0], 20.0)
        self.mode = Sensor.discrete("mode", "Operating mode", "", ["off", "heat", "cool"], "off")
        self.count = Sensor.integer("count", "Requests served", "", [0, 1000000], 0)
        for sensor in (self.setpoint, self.mode, self.count):
            sensor.set_value(sensor.value(), timestamp=1700000000.0)
            self.add_sensor(sensor)

    @request(Float(min=0.0, max=100.0))
    @return_reply(Float())
    def request_set_point(self, req, value):
        """Set the target temperature."""
        self.setpoint.set_value(value, timestamp=1700000001.0)
        return ("ok", value)

    @request(Discrete(("off", "heat", "cool")))
    @return_reply(Str())
    def request_mode(self, req, mode):
        """Set the operating mode."""
        self.mode.set_value(mode, timestamp=1700000002.0)
        return ("ok", mode)

    @request(Int(), Int())
    @return_reply(Int())
    def request_add(self, req, x, y):
        """Add two integers."""
        return ("ok", x + y)

    def request_echo(self, req, msg):
        """Echo the arguments."""
        return Message.reply(msg.name, "ok", *msg.arguments)

    def request_broken(self, req, msg):
        """Always fails."""
        raise FailReply("broken on purpose")


def main():
    server = Thermostat("127.0.0.1", 0)
    server.start(timeout=10)
    print(json.dumps({"port": server.bind_address[1]}), flush=True)
    sys.stdin.read()
    server.stop()
    server.join(timeout=10)


if __name__ == "__main__":
    main()
