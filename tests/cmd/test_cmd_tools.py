"""katcp-cmd's get, list and monitor tools, run as subprocesses against a live device."""

from __future__ import annotations

import json
import sys

import pexpect
from cmd_helpers import TIMEOUT, Device, cmd_env, run_cmd


def test_get_prints_value_status_and_time(device: Device) -> None:
    result = run_cmd("get", device.address, "cpu.temp", "fan.speed")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [w[:4] for w in lines] == [
        ["cpu.temp", "42.5", "degC", "unknown"],
        ["fan.speed", "1200", "rpm", "unknown"],
    ]
    assert all(len(w) == 5 and w[4].startswith("20") for w in lines)  # ISO time


def test_get_json_and_format(device: Device) -> None:
    result = run_cmd("get", device.address, "cpu.temp", "power.ok", "device.name", "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["name"], r["value"], r["status"]) for r in records] == [
        ("cpu.temp", 42.5, "unknown"),
        ("power.ok", True, "unknown"),
        ("device.name", "test rig", "unknown"),
    ]
    assert isinstance(records[0]["timestamp"], float)
    result = run_cmd("get", device.address, "/^fan/", "--format", "{name}={value}{units}")
    assert (result.returncode, result.stdout) == (0, "fan.speed=1200rpm\n")


def test_get_unknown_sensor_and_bad_format(device: Device) -> None:
    result = run_cmd("get", device.address, "no.such.sensor", "cpu.temp")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "katcp-cmd: unknown sensor 'no.such.sensor': Unknown sensor name."
    ]
    assert result.stdout.startswith("cpu.temp ")  # the known one is still printed
    result = run_cmd("get", device.address, "cpu.temp", "--format", "{nope}")
    assert result.returncode == 2
    assert result.stderr.startswith("katcp-cmd: bad --format '{nope}'")
    assert "Traceback" not in result.stderr


def test_list_sensors_filter_and_json(device: Device) -> None:
    result = run_cmd("list", device.address)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["cpu.temp", "device.name", "fan.speed", "power.ok"]
    result = run_cmd("list", device.address, "--filter", "^(cpu|fan)", "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records == [
        {
            "name": "cpu.temp",
            "type": "float",
            "units": "degC",
            "description": "CPU temperature",
            "params": [],
        },
        {
            "name": "fan.speed",
            "type": "integer",
            "units": "rpm",
            "description": "Fan speed",
            "params": [],
        },
    ]


def test_list_requests(device: Device) -> None:
    result = run_cmd("list", device.address, "--requests", "--filter", "^(echo|broken|watchdog)$")
    assert result.returncode == 0, result.stderr
    rows = [line.split(None, 1) for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == ["broken", "echo", "watchdog"]
    assert rows[0][1] == "Always fail (broken)."
    result = run_cmd("list", device.address, "--filter", "(")
    assert result.returncode == 2
    assert result.stderr.startswith("katcp-cmd: bad --filter regular expression")


def monitor_fan_speed(device: Device, maximum: int) -> pexpect.spawn:
    """``katcp-cmd monitor`` of fan.speed (event, --json), past its first update."""
    mon = pexpect.spawn(
        sys.executable,
        ["-m", "katcpx.cmd", "monitor", device.address, "fan.speed", "--json"]
        + ["--strategy", "event", "--maximum", str(maximum)],
        env=cmd_env(),
        encoding="utf-8",
        timeout=TIMEOUT,
    )
    mon.expect(r"\{.*\}\r\n")  # the first update comes when the strategy is set
    return mon


def test_monitor_json_maximum(own_device: Device) -> None:
    mon = monitor_fan_speed(own_device, maximum=3)
    first = json.loads(mon.after)
    assert (first["name"], first["value"], first["units"]) == ("fan.speed", 1200, "rpm")
    own_device.command("set fan.speed 1300")
    mon.expect(r"\{.*\}\r\n")
    assert json.loads(mon.after)["value"] == 1300
    own_device.command("set cpu.temp 60")  # not monitored: no output
    own_device.command("set fan.speed 1400")
    mon.expect(r"\{.*\}\r\n")
    third = json.loads(mon.after)
    assert (third["value"], third["status"]) == (1400, "nominal")
    mon.expect(pexpect.EOF)  # --maximum 3 reached
    mon.close()
    assert mon.exitstatus == 0


def test_monitor_follows_a_sensor_removed_and_added_back(own_device: Device) -> None:
    mon = monitor_fan_speed(own_device, maximum=2)
    own_device.command("remove-sensor fan.speed")
    mon.expect("fan.speed: removed by the device")
    own_device.command("add-sensor fan.speed")
    mon.expect("fan.speed: added by the device; setting the strategy again")
    mon.expect(r"\{.*\}\r\n")  # the strategy is set on the new sensor: its reading
    assert json.loads(mon.after)["value"] == 0
    mon.expect(pexpect.EOF)  # --maximum 2 reached
    mon.close()
    assert mon.exitstatus == 0


def test_monitor_period_duration_format(device: Device) -> None:
    result = run_cmd(
        "monitor",
        device.address,
        "cpu.temp",
        "--duration",
        "0.5",
        "--period",
        "0.1",
        "--format",
        "{name} {value} {status}",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 2
    assert set(lines) == {"cpu.temp 42.5 unknown"}


def test_monitor_bad_strategy_and_unknown_sensor(device: Device) -> None:
    result = run_cmd("monitor", device.address, "cpu.temp", "--strategy", "bogus", "1")
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("katcp-cmd: cannot set strategy 'bogus 1' on cpu.temp:")
    result = run_cmd("monitor", device.address, "nope", "--maximum", "1")
    assert result.returncode == 1
    assert result.stderr.startswith("katcp-cmd: unknown sensor 'nope'")


def test_monitor_connection_lost_exit_2(own_device: Device) -> None:
    mon = pexpect.spawn(
        sys.executable,
        ["-m", "katcpx.cmd", "monitor", own_device.address, "fan.speed"],
        env=cmd_env(),
        encoding="utf-8",
        timeout=TIMEOUT,
    )
    mon.expect("fan.speed +1200 rpm")
    own_device.kill()
    mon.expect("katcp-cmd: connection to 127.0.0.1:\\d+ lost")
    mon.expect(pexpect.EOF)
    mon.close()
    assert mon.exitstatus == 2


def test_monitor_stops_cleanly_on_ctrl_c(device: Device) -> None:
    mon = pexpect.spawn(
        sys.executable,
        ["-m", "katcpx.cmd", "monitor", device.address, "power.ok", "--strategy", "event"],
        env=cmd_env(),
        encoding="utf-8",
        timeout=TIMEOUT,
    )
    mon.expect("power.ok +1 +unknown")
    mon.sendintr()
    mon.expect(pexpect.EOF)
    mon.close()
    assert mon.exitstatus == 0
    assert "Traceback" not in mon.before
