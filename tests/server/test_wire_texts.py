"""Error texts on the wire and in the server's log show what the client sent, not Python reprs.

No ``b'...'``, no doubled backslashes, no ``['x']``: the text quoted as the client typed it,
with what cannot be printed escaped the KATCP way (spec 5.1 section 3.1). A real server and
a raw socket on 127.0.0.1. (``Could not parse value 'b'x'' as integer.`` is katcp-python
0.9.3's own kattypes text, kept for code comparing with it: tests/test_katcp_values.py.)
"""

from __future__ import annotations

import logging
import re

import pytest

from katcpx.flags import ProtocolFlags
from katcpx.message import Message
from katcpx.parser import MessageParser

from .helpers import ExampleServer, connect, running

# A bytes repr's b' (not the end of a word such as 'qb'), a doubled backslash, a list repr.
REPR = re.compile(r"(?<![A-Za-z0-9])b'|\\\\|\['")


def _has_repr(text: bytes | str) -> bool:
    return REPR.search(text.decode() if isinstance(text, bytes) else text) is not None


class BulkServer(ExampleServer):
    PROTOCOL_INFO = ProtocolFlags(5, 1, set("MIB"))


def _log_and_reply(client, line: bytes) -> tuple[bytes, Message | None]:
    """The ``#log`` text a bad line brings, and the reply (None for none) after it."""
    client.send_raw(line + b"\n?watchdog\n")
    log = b""
    while True:
        msg = client.read()
        if msg.name == "log":
            log = msg.arguments[-1]
        elif msg.mtype == Message.REPLY:
            if msg.name == "watchdog" and msg.arguments == [b"ok"]:
                return log, None
            assert client.read().name == "watchdog"  # the ?watchdog's own reply
            return log, msg


BAD_LINES = [
    # line, the #log text's end (before the column), the reply's text (or None)
    (b"?watchdog[0]", "bad message id '0'", "Bad message: bad message id '0'"),
    (b"?watchdog a\\qb", "unknown escape '\\q'", "Bad message: unknown escape '\\q'"),
    (
        b"?watchdog[1]x",
        "no white space after the message id's ], found 'x' (at column 13)",
        "Bad message: no white space after the message id's ], found 'x' at column 13",
    ),
    (b"?watchdog]", "] without a message id's [ before it (at column 10)", None),
    (b"x\x1b[2J", "found 'x' (at column 1) in 'x\\e[2J'", None),
    (b"?wat\xffch", "bad message name 'wat\\xffch'", None),
]


@pytest.mark.parametrize(("line", "logged", "replied"), BAD_LINES)
def test_bad_lines_are_shown_as_sent(
    line: bytes, logged: str, replied: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with running(ExampleServer("127.0.0.1", 0)) as server, connect(server) as client:
        with caplog.at_level(logging.WARNING, logger="katcp"):
            log, reply = _log_and_reply(client, line)
        assert logged.encode() in log, log
        assert not _has_repr(log), log
        if replied is None:
            assert reply is None, reply
        else:
            assert reply is not None and reply.arguments[0] == b"invalid", reply
            assert reply.arguments[1].startswith(replied.encode()), reply
        records = [r.getMessage() for r in caplog.records if "bad message" in r.getMessage()]
        assert records and logged in records[0], records
        assert not _has_repr(records[0]), records


FAILS = [
    (("an.int", "period", "abc"), "period must be a number, not 'abc'"),
    (("an.int", "period", "a b"), "period must be a number, not 'a b'"),
    (("an.int", "period", b"\xff\x1b"), "period must be a number, not '\\xff\\e'"),
    (("an.int", "differential", "x"), "difference must be an integer for integer sensors, not 'x'"),
    (("nosuch,an.int,other", "event"), "Unknown sensor names: nosuch, other."),
]


@pytest.mark.parametrize(("args", "text"), FAILS)
def test_sampling_fail_replies_show_arguments_as_sent(args: tuple, text: str) -> None:
    with running(BulkServer("127.0.0.1", 0)) as server, connect(server) as client:
        reply, _ = client.request("sensor-sampling", *args)
        assert reply.arguments == [b"fail", text.encode()], reply


def test_the_parser_names_each_head_problem() -> None:
    parser = MessageParser()
    cases = {
        b"?watchdog[1]x": ("no white space after the message id's ]", 12),
        b"?watchdog[1][2]": ("no white space after the message id's ], found '[2]'", 12),
        b"?watchdog[1": ("message id not closed with ]", 10),
        b"?watchdog]": ("] without a message id's [", 9),
        b"?watchdog[x]": ("bad message id 'x'", 9),
        b"?x\\_y": ("bad byte '\\' in message name", 2),
        b"?watchdog[1]\\_y": ("no white space after the message id's ], found '\\_y'", 12),
    }
    for line, (problem, column) in cases.items():
        with pytest.raises(Exception) as info:
            parser.parse(line)
        assert info.value.problem.startswith(problem), (line, info.value.problem)
        assert info.value.column == column, (line, info.value.column)
        assert not _has_repr(str(info.value))


def test_kattypes_errors_escape_what_cannot_be_printed() -> None:
    from katcpx.errors import KatcpTypeError
    from katcpx.kattypes import Discrete

    with pytest.raises(KatcpTypeError) as info:
        Discrete(("a", "b")).unpack(b"x\x1b[2Jy")
    # katcp-python's text (its list of values included), with ESC shown as \e, not raw.
    assert str(info.value) == "Discrete value 'x\\e[2Jy' is not one of ['a', 'b']."
