"""A server started from a script serves until stopped, and no request goes unanswered."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from katcpx.message import Message

from .helpers import TIMEOUT, Client, ExampleServer, connect, running

SCRIPT = textwrap.dedent(
    """
    from {library} import DeviceServer

    class Server(DeviceServer):
        VERSION_INFO = ("script", 1, 0)
        BUILD_INFO = ("script", 1, 0, "")

        def setup_sensors(self):
            pass

    server = Server("127.0.0.1", 0)
    server.set_concurrency_options(handler_thread={handler_thread})
    server.start()
    print(server.bind_address[1], flush=True)
    """
)


@pytest.fixture(params=["katcpx", "katcp"])
def library(request) -> tuple[str, str]:
    """The library the script imports and the python that runs it (katcp-python 0.9.3 too)."""
    if request.param == "katcp":
        return "katcp", str(request.getfixturevalue("katcp_python"))
    return "katcpx", sys.executable


@pytest.mark.parametrize("handler_thread", [True, False])
def test_script_that_ends_after_start_keeps_serving_until_halted(tmp_path, handler_thread, library):
    name, python = library
    script = tmp_path / "server_script.py"
    script.write_text(SCRIPT.format(library=name, handler_thread=handler_thread))
    proc = subprocess.Popen(
        [python, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        # By now the script's main thread has ended (or is about to): the interpreter is
        # shutting down, waiting for the server's loop thread, as with katcp-python.
        with Client(("127.0.0.1", port)) as c:
            for _ in range(3):
                assert c.read().name == "version-connect"
            assert c.request("watchdog")[0].arguments == [b"ok"]
            reply, informs = c.request("help", "watchdog")
            assert reply.arguments == [b"ok", b"1"] and informs[0].arguments[0] == b"watchdog"
            assert c.request("halt")[0].reply_ok()
        # Halting stops the server; the process then ends by itself.
        assert proc.wait(TIMEOUT) == 0
        stderr = proc.stderr.read()
        assert "cannot schedule" not in stderr, stderr
        if name == "katcpx":
            # katcp-python itself may log a traceback when the client closes right after the
            # halt reply (its #disconnect meets a closed stream): not what is checked here.
            assert "Traceback" not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


class Raising(ExampleServer):
    def handle_message(self, client_conn, msg):
        if msg.name == "explode":
            raise RuntimeError("handle_message blew up")
        return super().handle_message(client_conn, msg)

    def request_stop_handler_thread(self, req, msg):
        """Stop the handler thread, as stopping the server does."""
        self._handler_executor.shutdown()
        return req.make_reply("ok")


def test_request_whose_dispatch_raises_gets_a_fail_reply():
    with running(Raising("127.0.0.1", 0)) as srv, connect(srv) as c:
        reply, _ = c.request("explode", mid=3)
        assert reply.arguments[0] == b"fail" and b"handle_message blew up" in reply.arguments[1]
        assert reply.mid == b"3"
        assert c.request("watchdog")[0].reply_ok()


def test_request_that_the_handler_thread_cannot_take_gets_a_fail_reply():
    with running(Raising("127.0.0.1", 0)) as srv, connect(srv) as c:
        assert c.request("stop-handler-thread")[0].reply_ok()
        # ?watchdog is answered on the loop (liveness), so a device request shows it.
        reply, _ = c.request("stop-handler-thread")
        assert reply.arguments[0] == b"fail"
        assert b"could not be handled" in reply.arguments[1]
        c.send(Message.inform("anything"))  # informs are dropped, the connection stays
        reply, _ = c.request("stop-handler-thread")
        assert reply.arguments[0] == b"fail"
        assert c.request("watchdog")[0].reply_ok()  # the loop still answers
