"""Ctrl-C while a script waits in ``join()``, then ``stop(); join()``, as README shows.

On CPython 3.11 a ``KeyboardInterrupt`` inside ``threading.Thread.join()`` marks the thread
as ended although it still runs; the second ``join()`` then returned at once and the process
exited before the server had told its clients ``#disconnect``. Each case runs the pattern in
its own process and sends it a real SIGINT while it waits.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from katcpx._joinable_thread import JoinableThread

from .helpers import TIMEOUT, Client

# What every script runs after its setup (which names `thing` and prints its port line):
# README's shutdown, then which of `thing`'s threads are still alive (there must be none).
# "joining" is printed inside the try: a SIGINT that comes before join() is entered (the
# main thread may wait for the GIL right after printing) is then caught all the same.
PATTERN = """
try:
    print("joining", flush=True)
    thing.join()
except KeyboardInterrupt:
    thing.stop()
    thing.join()
    import threading
    left = [t.name for t in threading.enumerate() if t.name.startswith(WATCHED)]
    print("left:", left, flush=True)
"""

SERVER = """
from katcpx import DeviceServer

class Heater(DeviceServer):
    VERSION_INFO = ("heater", 1, 0)
    BUILD_INFO = ("heater", 1, 0, "")

    def setup_sensors(self):
        pass

thing = Heater("127.0.0.1", 0)
thing.set_concurrency_options(handler_thread={handler_thread})
thing.start()
thing.wait_running(5)
print(thing.bind_address[1], flush=True)
WATCHED = "Heater."
"""

CLIENT = """
from katcpx import BlockingClient, DeviceServer

class Dev(DeviceServer):
    VERSION_INFO = ("dev", 1, 0)
    BUILD_INFO = ("dev", 1, 0, "")

    def setup_sensors(self):
        pass

server = Dev("127.0.0.1", 0)
server.setDaemon(True)
server.start()
server.wait_running(5)
thing = BlockingClient("127.0.0.1", server.bind_address[1])
thing.start()
assert thing.wait_protocol(5)
print(0, flush=True)
WATCHED = "katcpx-client"
"""

MANAGER = """
from katcpx.ioloop_manager import IOLoopManager

thing = IOLoopManager()
thing.start(5)
print(0, flush=True)
WATCHED = "katcpx-resource-ioloop"
"""


def _sigint_default() -> None:
    # A shell leaves SIGINT ignored in what it starts in the background (``pytest &``);
    # children inherit that and would never see KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(tmp_path, setup: str, during=None) -> tuple[str, str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(setup) + PATTERN)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,
    )
    try:
        port = int(proc.stdout.readline())
        client = Client(("127.0.0.1", port)) if port else None
        assert proc.stdout.readline() == "joining\n"
        try:
            if client is not None:
                for _ in range(3):
                    assert client.read().name == "version-connect"
            proc.send_signal(signal.SIGINT)
            if client is not None and during is not None:
                during(client)
        finally:
            if client is not None:
                client.close()
        out, err = proc.communicate(timeout=TIMEOUT * 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out, err


def _sees_disconnect(client: Client) -> None:
    # After SIGINT the script stops the server: its client must get #disconnect, then EOF.
    msgs = client.read_until_closed(TIMEOUT)
    assert [m.name for m in msgs] == ["disconnect"], msgs


@pytest.mark.parametrize("handler_thread", [True, False])
def test_server_join_interrupted_then_stop_join_disconnects_clients(tmp_path, handler_thread):
    out, err = _run(tmp_path, SERVER.format(handler_thread=handler_thread), _sees_disconnect)
    assert out.endswith("left: []\n"), (out, err)


@pytest.mark.parametrize("setup", [CLIENT, MANAGER], ids=["blocking-client", "ioloop-manager"])
def test_other_joins_interrupted_then_stop_join_wait_for_the_thread(tmp_path, setup):
    out, err = _run(tmp_path, setup)
    assert out.endswith("left: []\n"), (out, err)


def test_joinable_thread_join_raises_like_a_thread_before_start():
    with pytest.raises(RuntimeError):
        JoinableThread(target=lambda: None).join()
