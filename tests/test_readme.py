"""The README's examples run as written."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

from katcpx import BlockingClient, Message

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_protocol_core_session():
    result = doctest.testfile(str(README), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0


def test_device_server_example_serves_its_request():
    (block,) = [b for b in _python_blocks() if "class Heater" in b]
    namespace: dict = {}
    # Port 0 instead of 7147, so the test never collides with anything.
    exec(compile(block.replace("7147", "0"), "README.md", "exec"), namespace)
    server = namespace["server"]
    try:
        client = BlockingClient(*server.bind_address)
        client.start()
        try:
            assert client.wait_protocol(5)
            reply, informs = client.blocking_request(Message.request("heat", 23, 1.5), timeout=10)
            assert reply.reply_ok() and float(reply.arguments[1]) == 23.0
            assert [m.arguments[0] for m in informs] == [b"progress"] * len(informs) and informs
            reply, _ = client.blocking_request(Message.request("heat", 500), timeout=5)
            assert reply.arguments[:1] == [b"fail"] and b"target out of range" in reply.arguments[1]
        finally:
            client.stop()
            client.join(5)
    finally:
        server.stop().result(5)
        server.join(5)


def test_every_python_block_compiles():
    blocks = [b for b in _python_blocks() if not b.startswith(">>>")]  # doctests run above
    assert len(blocks) >= 4
    for block in blocks:
        compile(block, "README.md", "exec")


def test_testutils_example_runs_as_its_own_process(tmp_path):
    """The "Moving from katcp-python" unittest module passes, run as a script."""
    import subprocess
    import sys

    (block,) = [b for b in _python_blocks() if "BlockingTestClient" in b]
    script = tmp_path / "test_my_device.py"
    script.write_text(block)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "Ran 1 test" in proc.stderr and "OK" in proc.stderr
