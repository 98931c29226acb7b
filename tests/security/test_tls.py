"""TLS on 127.0.0.1 with trustme certificates: server, clients, and the errors on both sides."""

from __future__ import annotations

import logging
import ssl

import pytest
import trustme
from server.helpers import TIMEOUT, running

from katcpx import AsyncClient, BlockingClient
from katcpx.server.access import AccessPolicy, Grant, Role
from katcpx.tls import client_context

from .helpers import DeviceWithRequests, Pki, TlsClient, plain_socket

LOG = "test.tls"


def tls_server(pki: Pki, mutual: bool = False, **kwargs) -> DeviceWithRequests:
    srv = DeviceWithRequests(
        "127.0.0.1",
        0,
        logger=logging.getLogger(LOG),
        ssl_context=pki.server_ctx(mutual),
        **kwargs,
    )
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    return srv


def test_handshake_and_requests(pki: Pki) -> None:
    with running(tls_server(pki)) as srv:
        with TlsClient(srv.bind_address, pki.client_ctx()) as c:
            c.greet()
            reply, informs = c.request("sensor-value", "an.int")
            assert reply.arguments == [b"ok", b"1"]
            assert c.sock.version() in ("TLSv1.2", "TLSv1.3")


async def test_async_client_over_tls(pki: Pki) -> None:
    with running(tls_server(pki)) as srv:
        client = await AsyncClient.connect(
            *srv.bind_address, ssl_context=pki.client_ctx(), timeout=TIMEOUT
        )
        async with client:
            reply, _ = await client.call("fire")
            assert reply.arguments == [b"ok", b"fired"]


def test_blocking_client_over_tls(pki: Pki) -> None:
    with running(tls_server(pki)) as srv:
        client = BlockingClient(*srv.bind_address, ssl_context=pki.client_ctx())
        client.start()
        try:
            assert client.wait_protocol(TIMEOUT)
            reply, _ = client.blocking_request(katcpx_request("watchdog"), timeout=TIMEOUT)
            assert reply.reply_ok()
        finally:
            client.stop()
            client.join(TIMEOUT)


def connect_error(address: tuple[str, int], ctx: ssl.SSLContext) -> str:
    """The one-line error of a katcpx client that fails to get going with `ctx`."""
    client = BlockingClient(*address, ssl_context=ctx, auto_reconnect=False)
    client.start()
    try:
        assert not client.wait_protocol(1.0)
        assert client.last_connect_error is not None
        assert "\n" not in client.last_connect_error
        return client.last_connect_error
    finally:
        client.stop()
        client.join(TIMEOUT)


def katcpx_request(name: str):
    from katcpx import Message

    return Message.request(name)


def test_wrong_ca_fails_on_both_sides(pki: Pki, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, LOG)
    other = trustme.CA()
    other_file = str(tmp_path / "other-ca.pem")
    other.cert_pem.write_to_path(other_file)
    with running(tls_server(pki)) as srv:
        assert "certificate" in connect_error(srv.bind_address, client_context(other_file))
        with pytest.raises(ssl.SSLCertVerificationError):
            TlsClient(srv.bind_address, client_context(other_file))
    # The server logged that the client refused its certificate, naming the client.
    texts = [r.getMessage() for r in caplog.records if r.name == LOG]
    assert any("did not accept our certificate" in t and "127.0.0.1" in t for t in texts), texts


def test_plain_tcp_client_on_tls_port_is_told_and_logged(pki: Pki, caplog) -> None:
    caplog.set_level(logging.WARNING, LOG)
    with running(tls_server(pki)) as srv:
        # A KATCP client waits for the server to speak first: it sends nothing.
        sock = plain_socket(srv.bind_address)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"#disconnect ") and b"TLS" in data
        assert sock.recv(4096) == b""
        sock.close()
        # A client that speaks first gets the same, at once.
        sock = plain_socket(srv.bind_address)
        sock.sendall(b"?watchdog\n")
        assert sock.recv(4096).startswith(b"#disconnect ")
        sock.close()
    texts = [r.getMessage() for r in caplog.records if r.name == LOG]
    assert any("sent no TLS handshake" in t for t in texts), texts
    assert any("sent plain text, not TLS" in t for t in texts), texts


def test_tls_client_on_plain_port_gets_one_line(pki: Pki, caplog) -> None:
    caplog.set_level(logging.WARNING, LOG)
    srv = DeviceWithRequests("127.0.0.1", 0, logger=logging.getLogger(LOG))
    with running(srv):
        assert "not speaking TLS" in connect_error(srv.bind_address, pki.client_ctx())
    texts = [r.getMessage() for r in caplog.records if r.name == LOG]
    assert any("sent a TLS handshake to this plain TCP port" in t for t in texts), texts


def test_mutual_tls_requires_a_client_certificate(pki: Pki, caplog) -> None:
    caplog.set_level(logging.WARNING, LOG)
    with running(tls_server(pki, mutual=True)) as srv:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            # TLS 1.3 reports the refusal on the first read, not in the handshake.
            TlsClient(srv.bind_address, pki.client_ctx()).greet()
        with TlsClient(srv.bind_address, pki.client_ctx("operator")) as c:
            c.greet()
            assert c.request("watchdog")[0].arguments == [b"ok"]
    texts = [r.getMessage() for r in caplog.records if r.name == LOG]
    assert any("sent no client certificate" in t and "127.0.0.1" in t for t in texts), texts


def test_mutual_tls_cn_grant_gives_its_role(pki: Pki) -> None:
    policy = AccessPolicy("read", [Grant(Role.CONTROL, cert_cn="operator")])
    with running(tls_server(pki, mutual=True, access_policy=policy)) as srv:
        with TlsClient(srv.bind_address, pki.client_ctx("operator")) as op:
            op.greet()
            assert op.request("fire")[0].arguments == [b"ok", b"fired"]
            with TlsClient(srv.bind_address, pki.client_ctx("visitor")) as visitor:
                visitor.greet()
                reply = visitor.request("fire")[0]
                assert reply.arguments[0] == b"fail"
                assert b"control" in reply.arguments[1]
                # The refusal leaves the connection usable.
                assert visitor.request("peek")[0].arguments == [b"ok", b"seen"]


def test_client_without_certificate_is_told_in_one_line(pki: Pki) -> None:
    with running(tls_server(pki, mutual=True)) as srv:
        assert "client certificate" in connect_error(srv.bind_address, pki.client_ctx())


def test_sim_rejects_a_bad_policy_file(tmp_path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "access.toml"
    bad.write_text('default_role = "boss"\n')
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "katcpx_devices.sim",
            "weather",
            "--port",
            "0",
            "--access",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "bad --access file" in out.stderr and "unknown role 'boss'" in out.stderr


def test_client_certificate_from_another_ca_is_refused_and_logged(
    pki: Pki, tmp_path, caplog
) -> None:
    caplog.set_level(logging.WARNING, LOG)
    other = trustme.CA()
    cert = other.issue_cert("intruder.example", common_name="operator")
    cert_file, key_file = str(tmp_path / "intruder.pem"), str(tmp_path / "intruder.key")
    cert.private_key_pem.write_to_path(key_file)
    cert.cert_chain_pems[0].write_to_path(cert_file)
    with running(tls_server(pki, mutual=True)) as srv:
        ctx = client_context(pki.ca_file, cert_file, key_file)
        assert "client certificate" in connect_error(srv.bind_address, ctx)
    texts = [r.getMessage() for r in caplog.records if r.name == LOG]
    assert any("refused the client certificate of 127.0.0.1" in t for t in texts), texts
