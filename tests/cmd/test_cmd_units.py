"""In-process tests of katcp-cmd's parsing, rendering and completion helpers."""

from __future__ import annotations

import json

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from katcpx.cmd._cli import main
from katcpx.cmd._completion import KatcpCompleter
from katcpx.cmd._connection import CmdError, looks_like_address, parse_address
from katcpx.cmd._printable import dump_json, printable, split_words
from katcpx.cmd._render import (
    SensorInfo,
    SensorUpdate,
    quote_argument,
    render_message,
    render_update,
)
from katcpx.cmd._tools import request_name
from katcpx.message import Message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host:1234", ("host", 1234)),
        (":7147", ("localhost", 7147)),
        ("7147", ("localhost", 7147)),
        ("[::1]:10000", ("::1", 10000)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert looks_like_address(text)
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["sensor-value", "host", "host:port", "host:99999"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(CmdError):
        parse_address(text)
    assert not looks_like_address("sensor-value")


def test_request_name() -> None:
    assert request_name("?help") == request_name("help") == "help"
    with pytest.raises(CmdError, match="not a request name"):
        request_name("?1abc")


@pytest.mark.parametrize(
    "arg",
    [
        "plain",
        "",
        "two words",
        'q"uote',
        "back\\slash",
        "tab\there",
        "\\e not an escape",
        "x\x1b]0;PWNED\x07y",
        "\0\x1b\t\n\r\\",
        "del\x7f c1\x9b nbsp\xa0 rlo\u202e é ✓",
        "\\x41 stays",
    ],
)
def test_quote_argument_round_trips_through_split_words(arg: str) -> None:
    quoted = quote_argument(arg)
    assert split_words(quoted) == [arg]
    assert quoted.isprintable()  # nothing for a terminal to act on


def test_printable_uses_katcp_escapes() -> None:
    assert printable("\0\x1b\t\n\r\\\x07\x7f\x85é") == "\\0\\e\\t\\n\\r\\\\\\x07\\x7f\\x85é"
    assert dump_json({"v": "a\x7fb\x1b"}) == '{"v": "a\\u007fb\\u001b"}'
    assert json.loads(dump_json({"v": "a\x7fb\x1b"})) == {"v": "a\x7fb\x1b"}


def test_render_message_plain_and_raw() -> None:
    msg = Message.reply("echo", "ok", "a b", "", mid=7)
    assert render_message(msg) == '!echo ok "a b" ""'
    assert render_message(msg, raw=True) == "!echo[7] ok a\\_b \\@"
    inform = Message.inform("sensor-status", "1.5", "1", "x", "warn", "3")
    coloured = render_message(inform, color=True, unsolicited=True)
    assert coloured == "\x1b[33m#sensor-status\x1b[0m 1.5 1 x \x1b[33mwarn\x1b[0m 3"


def test_sensor_update_json_types_and_v4_milliseconds() -> None:
    info = SensorInfo.from_inform(Message.inform("sensor-list", "b", "desc", "", "boolean"))
    msg = Message.inform("sensor-status", "1700000000123", "1", "b", "nominal", "0")
    (update,) = SensorUpdate.from_inform(msg, {"b": info}, major=4)
    assert update.timestamp == pytest.approx(1700000000.123)
    record = json.loads(render_update(update, as_json=True))
    assert record["value"] is False
    assert render_update(update, fmt="{name}:{value}:{status}") == "b:False:nominal"


def _complete(completer: KatcpCompleter, text: str) -> list[str]:
    doc = Document(text, len(text))
    texts = [
        c.text for c in completer.get_completions(doc, CompleteEvent(completion_requested=True))
    ]
    assert all(t.endswith(" ") for t in texts)  # a completed word ends with a space
    return [t[:-1] for t in texts]


def test_completer() -> None:
    class FakeShell:
        requests = {"help": "", "sensor-value": "", "sensor-list": "", "sensor-sampling": ""}
        sensors = {"cpu.temp": "CPU", "cpu.load": "", "fan.speed": ""}

    completer = KatcpCompleter(FakeShell())  # type: ignore[arg-type]
    assert _complete(completer, "?sensor-v") == ["sensor-value"]
    assert _complete(completer, "sen") == ["sensor-list", "sensor-sampling", "sensor-value"]
    assert _complete(completer, "?sensor-value cpu.") == ["cpu.load", "cpu.temp"]
    assert _complete(completer, "?help cpu.") == []  # help takes no sensor
    assert _complete(completer, "sensor-sampling fan.speed per") == ["period"]
    assert _complete(completer, "/wa") == ["/watch"]
    assert _complete(completer, "/watch cpu.temp f") == ["fan.speed"]


def test_main_usage_error_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err == "katcp-cmd: get: no sensor names given\n"


def test_completer_escapes_device_names() -> None:
    class HostileShell:
        requests = {"go\x1b[2J": "help\x1b]0;T\x07"}
        sensors: dict[str, str] = {}

    completer = KatcpCompleter(HostileShell())  # type: ignore[arg-type]
    doc = Document("go", 2)
    (completion,) = completer.get_completions(doc, CompleteEvent(completion_requested=True))
    assert completion.text == '"go\\e[2J" '  # typed back as the same name
    assert split_words(completion.text) == ["go\x1b[2J"]
    assert completion.display_text == "go\\e[2J"
    assert completion.display_meta_text == "help\\e]0;T\\x07"
