"""Credentials and policies: clear errors naming the flag and file, warnings for weak ones."""

from __future__ import annotations

import datetime
import logging
import subprocess
import sys

import pytest
import trustme
from server.helpers import running

from katcpx.server.access import AccessPolicy, Grant, Role, load_policy
from katcpx.tls import client_context

from .helpers import DeviceWithRequests, Pki, plain_socket
from .test_tls import LOG, connect_error, tls_server

TOOLS = {
    "katcpx-sim": [sys.executable, "-m", "katcpx_devices.sim", "psu", "--port", "0"],
    "katcp-cmd": [sys.executable, "-m", "katcpx.cmd"],
    "katcpx-web": [sys.executable, "-m", "katcpx.web", "--port", "0", "127.0.0.1:1"],
}


def run_tool(tool: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TOOLS[tool], *flags, *(["127.0.0.1:1", "?watchdog"] if tool == "katcp-cmd" else [])],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


# -- policy files ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", '[[grant]]\naddress = "10.0.0.1"\nrole = "read"\n'])
def test_policy_file_without_default_role_is_refused(tmp_path, text) -> None:
    path = tmp_path / "access.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_policy(str(path))
    msg = str(info.value)
    assert "access.toml" in msg and "default_role is required" in msg
    assert "read, control, admin" in msg


def test_unknown_grant_key_and_single_table_are_named(tmp_path) -> None:
    path = tmp_path / "access.toml"
    path.write_text(
        'default_role = "read"\n[[grant]]\naddress = "10.0.0.1"\nrole = "read"\nexpires = 2027\n'
    )
    with pytest.raises(ValueError, match=r"grant 1: unknown keys \['expires'\]"):
        load_policy(str(path))
    path.write_text('default_role = "read"\n[grant]\naddress = "10.0.0.1"\nrole = "read"\n')
    with pytest.raises(ValueError, match=r"\[\[grant\]\]"):
        load_policy(str(path))


def test_cert_cn_grant_without_client_certificates_is_warned(pki: Pki, caplog) -> None:
    caplog.set_level(logging.WARNING, LOG)
    policy = AccessPolicy("read", [Grant(Role.CONTROL, cert_cn="operator")])
    plain = DeviceWithRequests("127.0.0.1", 0, logger=logging.getLogger(LOG), access_policy=policy)
    with running(plain):
        pass
    with running(tls_server(pki, access_policy=policy)):
        pass
    with running(tls_server(pki, mutual=True, access_policy=policy)):
        pass
    texts = [r.getMessage() for r in caplog.records if r.name == LOG]
    never = [t for t in texts if "cert_cn='operator'" in t and "can never match" in t]
    assert len(never) == 2, texts
    assert "--tls-cert" in never[0] and "--tls-ca" in never[1]


# -- TLS files on every tool -----------------------------------------------------------------


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_tls_file_errors_name_flag_and_file(pki: Pki, tmp_path, tool) -> None:
    missing = str(tmp_path / "nope.key")
    out = run_tool(
        tool, "--tls-cert", pki.server_cert, "--tls-key", missing, "--tls-ca", pki.ca_file
    )
    assert out.returncode != 0
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"{tool}: --tls-key {missing}: No such file"), out.stderr
    # A certificate file without its key, and a key that is not the certificate's.
    out = run_tool(tool, "--tls-cert", pki.server_cert, "--tls-ca", pki.ca_file)
    if tool != "katcpx-sim":  # needs no other flag: it starts; checked below
        line = out.stderr.strip().splitlines()[-1]
        assert line.startswith(f"{tool}: --tls-cert {pki.server_cert} holds no private key")
        assert "--tls-key" in line
    other_cert, other_key = pki.client_cert("someone")
    out = run_tool(
        tool, "--tls-cert", pki.server_cert, "--tls-key", other_key, "--tls-ca", pki.ca_file
    )
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"{tool}: --tls-key {other_key} is not the private key of --tls-cert")
    assert "error:" not in out.stderr and "Traceback" not in out.stderr


def test_sim_cert_without_key_names_the_flag(pki: Pki) -> None:
    out = run_tool("katcpx-sim", "--tls-cert", pki.server_cert)
    line = out.stderr.strip().splitlines()[-1]
    assert out.returncode != 0
    assert line.startswith(f"katcpx-sim: --tls-cert {pki.server_cert} holds no private key")


def test_expired_server_certificate_is_warned(tmp_path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert(
        "127.0.0.1", not_after=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    )
    cert_file, key_file = str(tmp_path / "old.pem"), str(tmp_path / "old.key")
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    proc = subprocess.Popen(
        [*TOOLS["katcpx-sim"], "--tls-cert", cert_file, "--tls-key", key_file],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Ctrl-C" in line:
                break
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"TLS certificate {cert_file}: the certificate expired on 2020-01-01" in err, err


def test_short_token_is_warned(tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("short\n")
    proc = subprocess.Popen(
        [*TOOLS["katcpx-web"], "--token-file", str(token), "--host", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "characters" in line or len(seen) > 30:
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert any("only 5 characters" in s and "WARNING" in s for s in seen), seen


# -- refused client certificates ------------------------------------------------------------


def test_refused_client_certificate_is_told_as_such(pki: Pki, tmp_path) -> None:
    other = trustme.CA()
    cert = other.issue_cert("intruder.example", common_name="operator")
    cert_file, key_file = str(tmp_path / "intruder.pem"), str(tmp_path / "intruder.key")
    cert.private_key_pem.write_to_path(key_file)
    cert.cert_chain_pems[0].write_to_path(cert_file)
    expired = pki.ca.issue_cert(
        "old.example",
        common_name="old",
        not_after=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
    )
    old_file, old_key = str(tmp_path / "old.pem"), str(tmp_path / "old.key")
    expired.private_key_pem.write_to_path(old_key)
    expired.cert_chain_pems[0].write_to_path(old_file)
    with running(tls_server(pki, mutual=True)) as srv:
        text = connect_error(srv.bind_address, client_context(pki.ca_file, cert_file, key_file))
        assert "refused our client certificate" in text and cert_file in text, text
        assert "not signed by the CA" in text and "before greeting" not in text
        text = connect_error(srv.bind_address, client_context(pki.ca_file, old_file, old_key))
        assert "refused our client certificate" in text and "expired on 2020-01-01" in text
        text = connect_error(srv.bind_address, client_context(pki.ca_file))
        assert "we sent none" in text and "--tls-cert" in text, text


def test_disconnect_text_has_no_stray_quotes(pki: Pki) -> None:
    with running(tls_server(pki)) as srv:
        sock = plain_socket(srv.bind_address)
        sock.sendall(b"?watchdog\n")
        data = sock.recv(4096)
        sock.close()
    assert data == b"#disconnect This\\_port\\_requires\\_TLS\\_(use\\_--tls-ca).\n"


def test_server_context_warns_of_a_not_yet_valid_certificate(tmp_path, caplog) -> None:
    from katcpx.tls import server_context

    caplog.set_level(logging.WARNING, "katcp.tls")
    ca = trustme.CA()
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    cert = ca.issue_cert("127.0.0.1", not_before=later)
    cert_file, key_file = str(tmp_path / "new.pem"), str(tmp_path / "new.key")
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    server_context(cert_file, key_file)
    texts = [r.getMessage() for r in caplog.records]
    assert any(cert_file in t and "not valid before" in t for t in texts), texts
