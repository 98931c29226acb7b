"""Certificates (made with trustme at test time) and TLS clients for the security tests."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from server.helpers import TIMEOUT, Client, ExampleServer

from katcpx.message import Message
from katcpx.server.access import requires_role
from katcpx.tls import client_context, server_context


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, and client certificates by CN."""

    dir: Path
    ca: trustme.CA
    ca_file: str
    server_cert: str
    server_key: str

    @classmethod
    def make(cls, directory: Path) -> Pki:
        ca = trustme.CA()
        ca_file = str(directory / "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        cert = ca.issue_cert("127.0.0.1", "localhost", common_name="device")
        server_cert = str(directory / "server.pem")
        server_key = str(directory / "server.key")
        cert.private_key_pem.write_to_path(server_key)
        with open(server_cert, "wb") as f:
            for blob in cert.cert_chain_pems:
                f.write(blob.bytes())
        return cls(directory, ca, ca_file, server_cert, server_key)

    def client_cert(self, cn: str) -> tuple[str, str]:
        """Files of a client certificate with common name `cn` (cert, key)."""
        cert = self.ca.issue_cert(f"{cn}.example", common_name=cn)
        cert_file = str(self.dir / f"{cn}.pem")
        key_file = str(self.dir / f"{cn}.key")
        cert.private_key_pem.write_to_path(key_file)
        with open(cert_file, "wb") as f:
            for blob in cert.cert_chain_pems:
                f.write(blob.bytes())
        return cert_file, key_file

    def server_ctx(self, mutual: bool = False) -> ssl.SSLContext:
        return server_context(self.server_cert, self.server_key, self.ca_file if mutual else None)

    def client_ctx(self, cn: str | None = None) -> ssl.SSLContext:
        if cn is None:
            return client_context(self.ca_file)
        return client_context(self.ca_file, *self.client_cert(cn))


class TlsClient(Client):
    """The blocking test client of the server tests, over TLS."""

    def __init__(
        self, address: tuple[str, int], ctx: ssl.SSLContext, timeout: float = TIMEOUT
    ) -> None:
        super().__init__(address, timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=address[0])

    def greet(self) -> TlsClient:
        for _ in range(3):
            assert self.read().name == "version-connect"
        return self


class DeviceWithRequests(ExampleServer):
    """ExampleServer plus a device request (control) and a read request."""

    def request_fire(self, req: Any, msg: Message) -> Message:
        """Fire the device (a control request)."""
        return req.make_reply("ok", "fired")

    @requires_role("read")
    def request_peek(self, req: Any, msg: Message) -> Message:
        """Look at the device (marked read)."""
        return req.make_reply("ok", "seen")


def plain_socket(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address[:2], timeout=TIMEOUT)
