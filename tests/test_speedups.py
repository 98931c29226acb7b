"""The codec's C speedups give exactly what the pure-Python codec gives, errors included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import katcpx.message
import katcpx.parser
from katcpx import codec
from katcpx.errors import KatcpSyntaxError
from katcpx.message import Message
from katcpx.parser import StreamParser, parse_line

ROOT = Path(__file__).resolve().parent.parent
PURE = bool(os.environ.get("KATCPX_PURE_PYTHON"))
needs_speedups = pytest.mark.skipif(PURE, reason="KATCPX_PURE_PYTHON is set")

# Every byte that matters to the codec, and a few that do not.
SPECIAL = b"\\ \t\0\n\r\x1b\x0b\x0c_@0netre[]?!#-"
arg_bytes = st.binary(max_size=12) | st.lists(
    st.sampled_from(list(SPECIAL + b"aZ9\xff")), max_size=12
).map(bytes)
# Lines built from heads, separators and escape-heavy tokens, valid or not.
token = st.lists(st.sampled_from(list(SPECIAL + b"az1")), min_size=0, max_size=8).map(bytes)
head = st.sampled_from(
    [
        b"?watchdog",
        b"!reply[12]",
        b"#inform",
        b"?a-b[0]",
        b"?x[2147483648]",
        b"?bad$name",
        b"help",
        b"#sensor-status",
        b"?na\\_me",
        b"!r[1",
        b"",
    ]
)
line = st.builds(
    lambda h, seps, toks: h + b"".join(s + t for s, t in zip(seps, toks, strict=False)),
    head,
    st.lists(st.sampled_from([b" ", b"\t", b"  ", b" \t", b""]), max_size=6),
    st.lists(token, max_size=6),
) | st.binary(max_size=40)

relaxed = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def outcome(fn, *args):
    """What `fn` returns, or the class and text of what it raises."""
    try:
        result = fn(*args)
    except (KatcpSyntaxError, TypeError) as error:
        return (type(error), str(error))
    return result


@pytest.fixture
def pure(monkeypatch):
    """Runs a function with the pure-Python codec: the speedups switched off."""

    def run(fn, *args):
        with monkeypatch.context() as m:
            m.setattr(katcpx.message, "fast_format_line", None)
            m.setattr(katcpx.parser, "fast_split_line", None)
            return outcome(fn, *args)

    return run


def test_the_speedups_are_built_where_the_tests_run():
    if PURE:
        assert not codec.SPEEDUPS and codec.fast_format_line is None
        return
    # A test machine has a C compiler (.ci/run installs one): a build that silently fell
    # back to pure Python would hide the speed the benchmarks claim.
    assert codec.SPEEDUPS, "the C speedups did not build: is a C compiler installed?"


@needs_speedups
@relaxed
@given(st.lists(arg_bytes, max_size=25), st.sampled_from([b"?x", b"!reply[7]", b"#i"]))
def test_formatting_matches_pure_python(pure, args, head_bytes):
    mtype = {63: 0, 33: 1, 35: 2}[head_bytes[0]]
    name, _, mid = head_bytes[1:].partition(b"[")
    msg = Message(mtype, name.decode(), args, mid[:-1] or None)
    assert bytes(msg) == pure(bytes, msg)
    assert (
        bytes(msg) == head_bytes + b"".join(b" " + codec.escape_argument(a) for a in args) + b"\n"
    )


@needs_speedups
def test_arguments_of_other_types_format_as_in_pure_python(pure):
    msg = Message.request("x", "a b")
    for arguments in ([b"a b", "not bytes"], [bytearray(b"a b"), b""], (b"a", b"b c")):
        msg.arguments = arguments
        assert outcome(bytes, msg) == pure(bytes, msg)
    msg.arguments = [b"a b", "text"]
    assert outcome(bytes, msg)[0] is TypeError


@needs_speedups
@relaxed
@given(line)
def test_parsing_matches_pure_python(pure, raw):
    assert outcome(parse_line, raw) == pure(parse_line, raw)


@needs_speedups
@relaxed
@given(st.lists(line, max_size=8), st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_stream_parsing_matches_pure_python(pure, lines, eol):
    data = eol.join(lines) + eol

    def feed(data):
        return [
            outcome(lambda m: m, m) if isinstance(m, Message) else (type(m), str(m))
            for m in StreamParser().feed(data)
        ]

    assert feed(data) == pure(feed, data)


@needs_speedups
def test_parsing_edge_cases_match_pure_python(pure):
    for raw in [
        b"",
        b" ",
        b"\t?x",
        b"?x ",
        b"?x \\",
        b"?x a\\",
        b"?x \\q",
        b"?x \\@\\@",
        b"?x\\_y",
        b"?x[1] \\_\\\\\\0\\n\\r\\e\\t",
        b"?x \x00",
        b"?x a\x0bb",
        b"?x\x0b",
        b"?x\x0c a",
        b"?x[01] a",
        b"?\xff",
        bytearray(b"?x a\\_b"),
    ]:
        assert outcome(parse_line, raw) == pure(parse_line, raw), raw


def test_the_codec_tests_pass_in_pure_python():
    """The codec's own tests, with the speedups switched off (what users without a C
    compiler run)."""
    files = [
        "tests/test_codec.py",
        "tests/test_message.py",
        "tests/test_message_escaping.py",
        "tests/test_parser.py",
        "tests/test_transport.py",
    ]
    env = dict(os.environ, KATCPX_PURE_PYTHON="1")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    probe = subprocess.run(
        [sys.executable, "-c", "import katcpx.codec as c; print(c.SPEEDUPS)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "False", probe.stderr


@needs_speedups
def test_every_byte_and_every_pair_of_bytes_parses_as_in_pure_python(pure):
    # Systematic where hypothesis samples: each byte in the head, in an argument, after a
    # backslash, and every two-byte argument (a lone byte, a raw special, an escape).
    lines = [b"?x " + bytes([a, b]) for a in range(256) for b in range(256)]
    for byte in (bytes([i]) for i in range(256)):
        lines += [template.replace(b"%", byte) for template in (b"?x%", b"%?x a", b"?x a%b")]
    for raw in lines:
        assert outcome(parse_line, raw) == pure(parse_line, raw), raw


@needs_speedups
def test_long_lines_and_many_arguments_match_pure_python(pure):
    for args in (
        [b"\\" * (1 << 20)],
        [bytes(range(256)) * 4096],
        [b""] * 50_000,
        [b"a", b" ", b"\\"] * 20_000,
    ):
        msg = Message.request("x")
        msg.arguments = args
        raw = bytes(msg)
        assert raw == pure(bytes, msg)
        assert outcome(parse_line, raw[:-1]) == pure(parse_line, raw[:-1])
        assert parse_line(raw[:-1]).arguments == args
    for raw in (
        b"?x" + b" \t" * (1 << 20),
        b"?x " + b"a" * (2 << 20) + b"\\",
        b"?x " + b"\\_" * (1 << 20) + b" \\q",
    ):
        assert outcome(parse_line, raw) == pure(parse_line, raw)


@needs_speedups
@pytest.mark.skipif(sys.maxsize > 2**32, reason="the size only overflows on 32-bit builds")
def test_formatting_a_line_longer_than_memory_is_left_to_python():
    # One 4 KiB argument of backslashes 2**20 times escapes to 8 GiB: past Py_ssize_t on a
    # 32-bit build, where the unchecked size wrapped to 1 MiB and the copy overran it.
    args = [b"\\" * 4096] * 2**20
    assert codec.fast_format_line(b"?x", args) is None
    msg = Message.request("x")
    msg.arguments = args
    with pytest.raises((OverflowError, MemoryError)):
        bytes(msg)
