"""docs/security.md's "when it goes wrong" table says what the server and client really say."""

from __future__ import annotations

import datetime
import logging
import re
import ssl
from pathlib import Path

import pytest
import trustme
from server.helpers import running

from katcpx.tls import client_context

from .helpers import DeviceWithRequests, Pki, TlsClient, plain_socket
from .test_tls import LOG, connect_error, tls_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def table() -> dict[str, tuple[list[str], list[str]]]:
    """situation -> (server log fragments, client fragments) from the doc's table."""
    text = DOC.read_text()
    start = text.index("| situation | server log | client |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        # Cells split on " | " (a fragment may hold "|"-free text only).
        situation, server, client = (c.strip() for c in line.strip("|").split(" | "))
        rows[situation] = (re.findall(r"`([^`]+)`", server), re.findall(r"`([^`]+)`", client))
    return rows


def matches(fragment: str, said: list[str]) -> bool:
    pattern = ".*".join(re.escape(part) for part in fragment.split("..."))
    return any(re.search(pattern, line) for line in said)


def normalise(lines: list[str], target: tuple[str, int], cert: str | None = None) -> list[str]:
    out = []
    for line in lines:
        line = line.replace(f"{target[0]}:{target[1]}", "host:port")
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:5123", line)
        if cert:
            line = line.replace(cert, "CERT")
        out.append(line)
    return out


def other_ca_cert(tmp_path: Path, pki: Pki | None = None, **kwargs) -> tuple[str, str]:
    ca = pki.ca if pki is not None else trustme.CA()
    cert = ca.issue_cert("someone.example", common_name="operator", **kwargs)
    cert_file, key_file = str(tmp_path / "c.pem"), str(tmp_path / "c.key")
    cert.private_key_pem.write_to_path(key_file)
    cert.cert_chain_pems[0].write_to_path(cert_file)
    return cert_file, key_file


def said(situation: str, pki: Pki, tmp_path: Path, caplog) -> tuple[list[str], list[str]]:
    """(server log lines, client lines) of `situation`, normalised like the table."""
    caplog.clear()
    client: list[str] = []
    cert = None
    if situation.startswith("server certificate not signed"):
        other = trustme.CA()
        ca_file = str(tmp_path / "other-ca.pem")
        other.cert_pem.write_to_path(ca_file)
        with running(tls_server(pki)) as srv:
            target = srv.bind_address
            client.append(connect_error(target, client_context(ca_file)))
            # A client on the ssl module (not asyncio) sends an alert.
            with pytest.raises(ssl.SSLCertVerificationError):
                TlsClient(target, client_context(ca_file))
    elif situation.startswith("plain TCP client"):
        with running(tls_server(pki)) as srv:
            target = srv.bind_address
            sock = plain_socket(target)
            client.append(sock.recv(4096).decode())
            sock.close()
    elif situation.startswith("TLS client on a plain port"):
        srv = DeviceWithRequests("127.0.0.1", 0, logger=logging.getLogger(LOG))
        with running(srv):
            target = srv.bind_address
            client.append(connect_error(target, pki.client_ctx()))
    else:
        if situation.startswith("no client certificate"):
            ctx = client_context(pki.ca_file)
        elif situation.startswith("client certificate from another CA"):
            cert, key = other_ca_cert(tmp_path)
            ctx = client_context(pki.ca_file, cert, key)
        else:
            assert situation.startswith("expired client certificate"), situation
            old = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
            cert, key = other_ca_cert(tmp_path, pki, not_after=old)
            ctx = client_context(pki.ca_file, cert, key)
        with running(tls_server(pki, mutual=True)) as srv:
            target = srv.bind_address
            client.append(connect_error(target, ctx))
    server = [r.getMessage() for r in caplog.records if r.name == LOG]
    return normalise(server, target), normalise(client, target, cert)


def test_every_row_of_the_table_is_what_is_said(pki: Pki, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, LOG)
    rows = table()
    assert len(rows) == 6
    for situation, (server_says, client_says) in rows.items():
        server, client = said(situation, pki, tmp_path, caplog)
        for fragment in server_says:
            assert matches(fragment, server), (situation, fragment, server)
        for fragment in client_says:
            assert matches(fragment, client), (situation, fragment, client)
