"""The peer test infrastructure works: venv, katcp-python server/client subprocesses, aiokatcp.

Checks go over plain sockets (peers.raw) so they do not depend on any KATCP library.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from peers import (
    AiokatcpServerThread,
    KatcpPythonClient,
    KatcpPythonServer,
    PeerError,
    PeerVenvError,
    ensure_katcp_python_venv,
)
from peers.catalogue import HINTED_TIMEOUT, REQUEST_NAMES
from peers.raw import RawConnection, line_name
from peers.venv import KATCP_PYTHON_REQUIREMENTS, katcp_python_venv_dir

pytestmark = pytest.mark.peers


def test_venv_has_katcp_093_on_tornado_4(katcp_python):
    out = subprocess.run(
        [
            str(katcp_python),
            "-c",
            "import katcp, tornado; print(katcp.__version__, tornado.version)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out[0] == "0.9.3"
    assert out[1].startswith("4.")


def test_venv_reuse_is_instant_and_marked(katcp_python):
    start = time.perf_counter()
    again = ensure_katcp_python_venv()
    assert again == katcp_python
    assert time.perf_counter() - start < 2.0
    venv = katcp_python_venv_dir()
    if katcp_python.is_relative_to(venv):  # not when KATCPX_KATCP_PYTHON overrides the venv
        marker = json.loads((venv / "katcpx-peer-ready.json").read_text())
        assert marker["requirements"] == list(KATCP_PYTHON_REQUIREMENTS)


def test_kp_server_answers_raw_socket(katcp_python_server):
    server = katcp_python_server
    assert server.protocol_info == "5.0-IM"
    with RawConnection(server.host, server.port) as conn:
        connect = conn.read_until(b"#version-connect")
        assert connect[-1] == b"#version-connect katcp-protocol 5.0-IM"

        reply, informs = conn.request(b"?watchdog")
        assert reply == b"!watchdog ok"

        reply, informs = conn.request(b"?help[7]")
        helped = {line.split(b" ")[1].decode() for line in informs if line.startswith(b"#help")}
        assert set(REQUEST_NAMES) <= helped
        assert {"watchdog", "sensor-value", "sensor-sampling"} <= helped
        assert reply == b"!help[7] ok " + str(len(helped)).encode()

        reply, informs = conn.request(b"?sensor-value float.0")
        assert reply == b"!sensor-value ok 1"
        fields = informs[-1].split(b" ")
        assert fields[0] == b"#sensor-value"
        assert fields[2:] == [b"1", b"float.0", b"nominal", b"0.25"]
        assert abs(float(fields[1]) - time.time()) < 3600  # seconds, not ms, in KATCP v5

        reply, _ = conn.request(b"?echo a\\_b \\\\ \\@")
        assert reply == b"!echo ok a\\_b \\\\ \\@"

        server.set_sensor("float.0", -3.5, status="warn")
        reply, informs = conn.request(b"?sensor-value float.0")
        assert informs[-1].split(b" ")[3:] == [b"float.0", b"warn", b"-3.5"]


def test_kp_server_v4(katcp_python):
    with KatcpPythonServer(katcp_python, protocol="4") as server:
        assert server.protocol_info == "4.0-M"
        with RawConnection(server.host, server.port) as conn:
            greeting = conn.read_until(b"#build-state")
            assert any(line.startswith(b"#version ") for line in greeting)
            reply, _ = conn.request(b"?watchdog")
            assert reply == b"!watchdog ok"
            reply, informs = conn.request(b"?sensor-value timestamp-sensor")
            # KATCP v4 timestamps are milliseconds.
            assert informs[-1].split(b" ")[-1] == b"1234567890500"
        with KatcpPythonClient(katcp_python, server.host, server.port) as client:
            # v4 servers announce no flags; katcp-python's client assumes none.
            assert client.protocol_info == "4.0"
            reply, _ = client.request("echo", "v4")
            assert reply.arguments == [b"ok", b"v4"]
            assert reply.mid is None


def test_kp_client_talks_to_kp_server(katcp_python):
    with (
        KatcpPythonServer(katcp_python, protocol="5.1", n_float=2) as server,
        KatcpPythonClient(katcp_python, server.host, server.port) as client,
    ):
        assert client.protocol_info == "5.1-BIMT"
        assert client.protocol()["versions"]["katcp-protocol"] == ["5.1-BIMT"]
        connect = client.wait_informs("version-connect", count=3)
        assert connect[0].arguments == [b"katcp-protocol", b"5.1-BIMT"]

        # Only UTF-8: katcp-python 0.9.3's request thread dies on other bytes (see catalogue).
        odd = [b"a b", b"back\\slash", b"", b"new\nline\ttab\x1b", "\u00e9t\u00e9\x00".encode()]
        reply, informs = client.request("echo", *odd)
        assert reply.reply_ok()
        assert reply.arguments == [b"ok", *odd]
        assert reply.mid is not None  # 5.x servers with I get message ids

        reply, _ = client.request("fail-with", "broken on purpose")
        assert reply.arguments == [b"fail", b"broken on purpose"]

        reply, informs = client.request("slow-echo", 0.05, "late")
        assert [m.arguments for m in informs] == [[b"started"]]
        assert reply.arguments == [b"ok", b"late"]

        reply, informs = client.request("request-timeout-hint", "hinted")
        assert reply.arguments == [b"ok", b"1"]
        assert informs[0].arguments == [b"hinted", repr(HINTED_TIMEOUT).encode()]

        reply, _ = client.request("sensor-sampling", "float.1", "event")
        assert reply.reply_ok()
        first = client.wait_informs("sensor-status")
        assert first[0].arguments[2:] == [b"float.1", b"nominal", b"1.25"]
        server.set_sensor("float.1", 9.75, status="error")
        second = client.wait_informs("sensor-status")
        assert second[0].arguments[2:] == [b"float.1", b"error", b"9.75"]

        server.mass_inform("custom", "x y", 3)
        assert client.wait_informs("custom")[0].arguments == [b"x y", b"3"]


def test_kp_client_command_errors_are_reported(katcp_python, katcp_python_server):
    server = katcp_python_server
    with KatcpPythonClient(katcp_python, server.host, server.port) as client:
        with pytest.raises(PeerError, match="got 0 of 1 #never-sent informs"):
            client.wait_informs("never-sent", timeout=0.2)
        # The peer survives a failed command.
        assert client.request("watchdog").reply.reply_ok()


def test_peer_startup_failure_surfaces_stderr(katcp_python):
    with pytest.raises(PeerError, match="invalid choice"):
        with KatcpPythonServer(katcp_python, protocol="6.0"):
            pass


def test_kp_server_exits_cleanly(katcp_python):
    server = KatcpPythonServer(katcp_python)
    with server:
        server.ping()
        assert server.returncode is None
    assert server.returncode == 0


def test_aiokatcp_server_answers_raw_socket(aiokatcp_server):
    host, port = aiokatcp_server
    with RawConnection(host, port) as conn:
        connect = conn.read_until(b"#version-connect")
        assert connect[0].startswith(b"#version-connect katcp-protocol 5.")

        reply, _ = conn.request(b"?watchdog[2]")
        assert reply == b"!watchdog[2] ok"

        reply, informs = conn.request(b"?sensor-value float.3")
        assert reply == b"!sensor-value ok 1"
        assert informs[-1].split(b" ")[2:] == [b"1", b"float.3", b"nominal", b"3.25"]

        reply, _ = conn.request(b"?echo a\\_b \\\\ \\@")
        assert reply == b"!echo ok a\\_b \\\\ \\@"

        reply, _ = conn.request(b"?fail-with")
        assert reply == b"!fail-with fail expected\\_failure"

        reply, informs = conn.request(b"?inform-burst 3")
        assert informs == [b"#inform-burst 0", b"#inform-burst 1", b"#inform-burst 2"]
        assert reply == b"!inform-burst ok 3"


def test_aiokatcp_server_sensor_control():
    with AiokatcpServerThread(n_float=1) as peer:
        peer.set_sensor("discrete-sensor", "three", status="warn")
        with RawConnection(*peer.address) as conn:
            reply, informs = conn.request(b"?sensor-value discrete-sensor")
            assert line_name(reply)[0] == b"!sensor-value"
            assert informs[-1].split(b" ")[3:] == [b"discrete-sensor", b"warn", b"three"]


def test_kp_client_talks_to_aiokatcp_server(katcp_python, aiokatcp_server):
    with KatcpPythonClient(katcp_python, *aiokatcp_server) as client:
        assert client.protocol_info.startswith("5.")
        reply, informs = client.request("slow-echo", 0.01, b"x\xffy")
        assert reply.arguments == [b"ok", b"x\xffy"]
        assert [m.arguments for m in informs] == [[b"started"]]


@pytest.mark.slow
def test_codec_bench_runs(katcp_python):
    """The codec benchmark still runs end to end and all implementations agree on the corpus."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_codec.py"
    proc = subprocess.run(
        [sys.executable, str(bench), "--lines", "300", "--repeats", "1", "--min-time", "0.01"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "identical across katcpx, aiokatcp, katcp-python 0.9.3: yes" in proc.stdout
    assert "FAILED" not in proc.stderr
    for heading in ("parse one line", "parse the whole corpus", "format message", "targets"):
        assert heading in proc.stdout


def test_venv_build_runs_once_under_concurrency(tmp_path, monkeypatch):
    """Concurrent callers (threads hold separate flock descriptions) build the venv once."""
    from peers import venv as venv_module

    target = tmp_path / "katcp093"
    monkeypatch.delenv(venv_module.PYTHON_OVERRIDE_ENV, raising=False)
    monkeypatch.setattr(venv_module, "katcp_python_venv_dir", lambda: target)
    builds = []
    entered = threading.Condition()
    release = threading.Event()

    def fake_build(venv):
        with entered:
            builds.append(venv)
            entered.notify_all()
        # Hold the "build" open so that an unserialised second caller would overlap it.
        assert release.wait(timeout=10)
        python = venv_module._venv_python(venv)
        python.parent.mkdir(parents=True, exist_ok=True)
        python.touch()
        (venv / venv_module._MARKER_NAME).write_text(json.dumps(venv_module._expected_marker()))

    monkeypatch.setattr(venv_module, "_build", fake_build)
    barrier = threading.Barrier(4)
    results = []

    def call():
        barrier.wait(timeout=10)
        results.append(venv_module.ensure_katcp_python_venv())

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    with entered:
        assert entered.wait_for(lambda: builds, timeout=10)
        # Without the lock the other callers enter within microseconds; allow them plenty.
        entered.wait_for(lambda: len(builds) > 1, timeout=0.5)
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert builds == [target]
    assert results == [venv_module._venv_python(target)] * 4

    # A marker for other requirements means a stale venv: it is rebuilt.
    monkeypatch.setattr(venv_module, "KATCP_PYTHON_REQUIREMENTS", ("katcp==0.9.2",))
    venv_module.ensure_katcp_python_venv()
    assert len(builds) == 2


def test_venv_errors_are_loud(tmp_path, monkeypatch):
    from peers import venv as venv_module

    with pytest.raises(PeerVenvError, match=r"(?s)exit code 3.*boom"):
        venv_module._run([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], "probe")
    monkeypatch.setenv(venv_module.PYTHON_OVERRIDE_ENV, str(tmp_path / "missing-python"))
    with pytest.raises(PeerVenvError, match="does not exist"):
        venv_module.ensure_katcp_python_venv()
