"""Formatting messages whose arguments need escaping: whole-line escaping equals per-argument.

``bytes(msg)`` escapes all arguments of a line in a few passes; this checks it against
escaping each argument alone, and against aiokatcp's codec, over random arguments made of
every special byte, empty arguments and the \\x01 it joins with.
"""

from __future__ import annotations

import random

import aiokatcp

from katcpx.message import Message, escape_argument
from katcpx.parser import MessageParser

ALPHABET = [b"a", b" ", b"\\", b"\n", b"\r", b"\t", b"\x1b", b"\0", b"@", b"_", b"\x01", b""]


def test_whole_line_escaping_matches_per_argument_escaping() -> None:
    rng = random.Random(13)
    parser = MessageParser()
    for _ in range(5000):
        args = [
            b"".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(1, 6))
        ]
        msg = Message.inform("x", *args)
        want = b"#x " + b" ".join(escape_argument(a) for a in args) + b"\n"
        assert bytes(msg) == want, args
        assert bytes(aiokatcp.Message.inform("x", *args)) == want, args
        assert parser.parse(want).arguments == args
