"""TLS for KATCP links with the standard :mod:`ssl` module.

Contexts come from :func:`server_context` and :func:`client_context` (or any
:class:`ssl.SSLContext` the caller builds). Every tool takes the same flags
(:func:`add_tls_arguments`): ``--tls-cert FILE`` and ``--tls-key FILE`` for its own
certificate and key, ``--tls-ca FILE`` for the CA that verifies the peer; on a server
``--tls-ca`` makes client certificates required (mutual TLS).

A server accepts TLS through :class:`TlsAcceptor` rather than asyncio's ``ssl=`` argument of
``create_server``: asyncio reports a failed server-side handshake only in debug mode, while
a device server must log who failed and why (wrong CA, missing client certificate, a
plain-TCP client on the TLS port). KATCP clients wait for the server to speak first, so a
plain client on a TLS port sends nothing: after :attr:`TlsAcceptor.hello_timeout` seconds
without a TLS ClientHello, or on a first byte that is not a TLS record, the server answers
with one plain-text ``#disconnect`` line saying the port needs TLS, logs it, and closes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import weakref
from collections.abc import Callable
from typing import Any

from .message import Message
from .transport import format_address

__all__ = [
    "TLS_RECORD_HANDSHAKE",
    "TlsAcceptor",
    "add_tls_arguments",
    "build_context",
    "certificate_warnings",
    "check_tls_files",
    "client_context",
    "client_context_from_args",
    "describe_closed_before_greeting",
    "describe_tls_error",
    "peer_common_name",
    "refuse_tls_on_plain_port",
    "server_context",
    "server_context_from_args",
    "tls_load_failure",
]

#: First byte of a TLS handshake record (a ClientHello starts with it).
TLS_RECORD_HANDSHAKE = 0x16

_log = logging.getLogger("katcp.tls")


def server_context(
    certfile: str, keyfile: str | None = None, cafile: str | None = None
) -> ssl.SSLContext:
    """Build a server-side context.

    Parameters
    ----------
    certfile, keyfile : str
        PEM files of the server's certificate (chain) and private key (`keyfile` may be
        None when `certfile` holds both).
    cafile : str, optional
        PEM file of the CA(s) that sign client certificates. Given, every client must
        present a certificate it signed (mutual TLS); the certificate's common name is then
        the client's identity for an access policy.

    Raises
    ------
    OSError, ssl.SSLError
        When a file cannot be read or does not hold what it should.
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certfile, keyfile)
    _warn_validity(certfile)
    if cafile:
        ctx.load_verify_locations(cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(
    cafile: str | None = None, certfile: str | None = None, keyfile: str | None = None
) -> ssl.SSLContext:
    """Build a client-side context that verifies the server (and its host name).

    Parameters
    ----------
    cafile : str, optional
        PEM file of the CA that signed the server's certificate (default: the system's
        trusted CAs).
    certfile, keyfile : str, optional
        The client's own certificate and key, for servers that require one.

    Raises
    ------
    OSError, ssl.SSLError
        When a file cannot be read or does not hold what it should.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
        _warn_validity(certfile)
    # SSLContext cannot tell whether it holds a certificate; remember it for the messages of
    # describe_closed_before_greeting.
    _OWN_CERT[id(ctx)] = certfile or ""
    weakref.finalize(ctx, _OWN_CERT.pop, id(ctx), None)
    return ctx


#: id of a context made by client_context -> its certificate file ("" for none).
_OWN_CERT: dict[int, str] = {}


def describe_closed_before_greeting(ctx: ssl.SSLContext, peer: str) -> str:
    """Why a TLS server closed the link after the handshake but before ``#version-connect``.

    Under TLS 1.3 a server refuses a client certificate (or its absence) only after the
    handshake and asyncio drops its alert. Whether we sent a certificate tells which.
    """
    certfile = _OWN_CERT.get(id(ctx))
    if certfile is None:  # a context built elsewhere: we cannot tell
        return (
            f"TLS: {peer} closed the link before greeting (does it require a client "
            "certificate, or did it refuse ours? --tls-cert/--tls-key)"
        )
    if not certfile:
        return (
            f"TLS: {peer} closed the link before greeting: it requires a client certificate "
            "and we sent none (give --tls-cert and --tls-key)"
        )
    why = certificate_warnings(certfile)
    likely = (
        why[0] if why else "it is probably not signed by the CA the server trusts (its --tls-ca)"
    )
    return f"TLS: {peer} refused our client certificate {certfile}: {likely}"


def add_tls_arguments(parser: argparse.ArgumentParser, *, server: bool = False) -> None:
    """Add ``--tls-cert``, ``--tls-key`` and ``--tls-ca`` to `parser` (the same on every tool)."""
    group = parser.add_argument_group("TLS")
    group.add_argument("--tls-cert", metavar="FILE", help="own TLS certificate (PEM)")
    group.add_argument("--tls-key", metavar="FILE", help="own TLS private key (PEM)")
    if server:
        ca_help = "CA that signs client certificates; makes client certificates required"
    else:
        ca_help = "CA that verifies the server's certificate; turns TLS on"
    group.add_argument("--tls-ca", metavar="FILE", help=ca_help)


def check_tls_files(prog: str, **files: str | None) -> None:
    """Exit with a one-line message when a file given to a TLS flag cannot be read.

    Parameters
    ----------
    prog
        The tool's name, the prefix of the message.
    files
        Flag name without dashes (``tls_cert``) to the file given, or None.

    Raises
    ------
    SystemExit
        ``<prog>: --tls-key FILE: no such file`` and the like.
    """
    for flag, path in files.items():
        if not path:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise SystemExit(f"{prog}: --{flag.replace('_', '-')} {path}: {why}") from None


def tls_load_failure(prog: str, exc: BaseException, cert: str | None, key: str | None) -> str:
    """One line explaining why ``load_cert_chain`` / ``load_verify_locations`` failed."""
    reason = (getattr(exc, "reason", None) or "").upper()
    text = str(exc)
    if "KEY_VALUES_MISMATCH" in reason or "KEY_VALUES_MISMATCH" in text:
        return (
            f"{prog}: --tls-key {key} is not the private key of --tls-cert {cert}; "
            "give the key file made with that certificate"
        )
    if key is None and ("PEM" in reason or "PEM" in text):
        return (
            f"{prog}: --tls-cert {cert} holds no private key; give it with --tls-key FILE "
            "(or put the key in the certificate file)"
        )
    if "PEM" in reason or "PEM" in text or "NO_START_LINE" in reason:
        return (
            f"{prog}: cannot read --tls-cert {cert} / --tls-key {key} as PEM "
            f"({exc}); check that they are a PEM certificate and its PEM key"
        )
    return f"{prog}: cannot load TLS files --tls-cert {cert} --tls-key {key}: {exc}"


def server_context_from_args(
    args: argparse.Namespace, prog: str = "katcpx"
) -> ssl.SSLContext | None:
    """The server context the TLS flags ask for, or None for plain TCP.

    Raises
    ------
    SystemExit
        With a one-line message, prefixed by `prog`, naming the flag and the file when the
        flags do not fit together or a file is unusable.
    """
    cert, key, ca = args.tls_cert, args.tls_key, args.tls_ca
    if not (cert or key or ca):
        return None
    if not cert:
        raise SystemExit(f"{prog}: a TLS server needs --tls-cert (and --tls-key)")
    return build_context(prog, server=True, cert=cert, key=key, ca=ca)


def build_context(
    prog: str, *, server: bool, cert: str | None, key: str | None, ca: str | None
) -> ssl.SSLContext:
    """A server or client context from the flags' files, or exit naming the flag and file.

    Raises
    ------
    SystemExit
        With a one-line message prefixed by `prog`.
    """
    check_tls_files(prog, tls_cert=cert, tls_key=key, tls_ca=ca)
    if key and not cert:
        raise SystemExit(f"{prog}: --tls-key needs --tls-cert (the certificate of that key)")
    try:
        if ca:
            # The CA first, so that an unusable CA file is named as such.
            ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(
            f"{prog}: --tls-ca {ca} holds no usable PEM CA certificate ({exc})"
        ) from None
    try:
        if server:
            assert cert is not None
            ctx = server_context(cert, key, ca)
        else:
            ctx = client_context(ca, cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(tls_load_failure(prog, exc, cert, key)) from None
    return ctx


def _warn_validity(certfile: str) -> None:
    # An expired (or not yet valid) own certificate loads fine but every peer refuses it.
    for line in certificate_warnings(certfile):
        _log.warning("TLS certificate %s: %s", certfile, line)


def certificate_warnings(certfile: str) -> list[str]:
    """Problems of the first certificate in `certfile` that still let it load.

    Returns
    -------
    list of str
        "expired on ..." or "not valid before ..." (empty when valid now or unreadable).
    """
    import time

    try:
        with open(certfile) as f:
            pem = f.read()
        start = pem.index("-----BEGIN CERTIFICATE-----")
        end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
        der = ssl.PEM_cert_to_DER_cert(pem[start:end])
    except (OSError, ValueError):
        return []
    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - trustme and the test extra bring it
        return []
    cert = x509.load_der_x509_certificate(der)
    now = time.time()
    before = cert.not_valid_before_utc.timestamp()
    after = cert.not_valid_after_utc.timestamp()
    if now > after:
        return [f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"]
    if now < before:
        return [
            f"the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        ]
    return []


def client_context_from_args(
    args: argparse.Namespace, prog: str = "katcpx"
) -> ssl.SSLContext | None:
    """The client context the TLS flags ask for, or None for plain TCP.

    Any of the three flags turns TLS on; without ``--tls-ca`` the system's CAs verify the
    server.

    Raises
    ------
    SystemExit
        With a one-line message, prefixed by `prog`, naming the flag and the file.
    """
    cert, key, ca = args.tls_cert, args.tls_key, args.tls_ca
    if not (cert or key or ca):
        return None
    return build_context(prog, server=False, cert=cert, key=key, ca=ca)


def describe_tls_error(exc: BaseException, peer: str, server_side: bool = False) -> str:
    """One line saying why a TLS link to or from `peer` failed, for people.

    Parameters
    ----------
    exc
        The exception the handshake or connection raised.
    peer
        ``host:port`` of the other side.
    server_side
        Whether we are the server (the message then speaks of the client's certificate).
    """
    if server_side:
        reason = getattr(exc, "reason", None) or ""
        if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in reason:
            detail = getattr(exc, "verify_message", None) or reason or str(exc)
            return f"TLS: refused the client certificate of {peer} ({detail})"
        if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reason:
            return f"TLS: {peer} sent no client certificate; this server requires one"
        if isinstance(exc, ConnectionResetError | EOFError | BrokenPipeError):
            # Clients on asyncio drop the link without an alert when they refuse our
            # certificate: the likely cause, said as such.
            return (
                f"TLS: {peer} closed the connection during the handshake (did it refuse this "
                "server's certificate? its --tls-ca must be the CA that signed it)"
            )
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return (
            f"TLS: the certificate of {peer} was not accepted ({reason}); "
            "check --tls-ca and the certificate's host name"
        )
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").upper()
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            return f"TLS: {peer} is not speaking TLS (a plain TCP port?)"
        if "CERTIFICATE_REQUIRED" in reason or "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reason:
            return f"TLS: {peer} requires a client certificate (--tls-cert/--tls-key)"
        if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
            return f"TLS: {peer} did not accept our certificate ({exc.reason})"
        return f"TLS: handshake with {peer} failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionResetError | EOFError | BrokenPipeError):
        return f"TLS: {peer} closed the connection during the handshake"
    return f"TLS: link to {peer} failed ({type(exc).__name__}: {exc})"


def refuse_tls_on_plain_port(proto: Any, data: bytes, context: ssl.SSLContext | None) -> bool:
    """On a plain-TCP server, log and close a connection whose first bytes are a TLS hello.

    `proto` is the connection's :class:`~katcpx.transport.KatcpProtocol`. Returns True when
    the connection was closed (the data must then be ignored).
    """
    # A TLS record header: handshake type, then version 3.x. A lone 0x16 byte is just a
    # bad KATCP line, answered like any other.
    if context is not None or len(data) < 3 or data[0] != TLS_RECORD_HANDSHAKE:
        return False
    if data[1] != 3 or data[2] > 4:
        return False
    proto.logger.warning(
        "TLS: %s sent a TLS handshake to this plain TCP port (a TLS client?); closing",
        proto.peer,
    )
    proto.close()
    return True


def peer_common_name(transport: asyncio.BaseTransport | None) -> str | None:
    """The common name of the verified peer certificate on `transport`, or None."""
    if transport is None:
        return None
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class TlsAcceptor(asyncio.Protocol):
    """Protocol of an accepted socket until its TLS handshake is done; then it hands over.

    Parameters
    ----------
    context
        The server's context.
    make_protocol
        Makes the protocol that carries the connection once TLS is up; it gets
        ``connection_made`` with the TLS transport.
    logger
        Where refused handshakes are logged, with the peer's address.
    hello_timeout
        Seconds to wait for a ClientHello before treating the peer as a plain-TCP client.
    handshake_timeout
        Seconds the whole handshake may take.
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        make_protocol: Callable[[], asyncio.BaseProtocol],
        logger: logging.Logger | None = None,
        *,
        hello_timeout: float = 2.0,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.context = context
        self.make_protocol = make_protocol
        self.logger = logger or _log
        self.hello_timeout = hello_timeout
        self.handshake_timeout = handshake_timeout
        self.peer = "<unconnected>"
        self._raw: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self._lost = False
        # Data and end of stream that arrive over TLS between the handshake and the hand-over.
        self._early: list[bytes] = []
        self._early_eof = False
        self._inner: asyncio.BaseProtocol | None = None

    # -- before TLS: the raw socket ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._started:  # the TLS transport: see _handshake
            return
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        self.peer = format_address(transport.get_extra_info("peername"))
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.hello_timeout, self._refuse_plain, None)

    def data_received(self, data: bytes) -> None:
        if self._started:
            self._early.append(data)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if data[0] != TLS_RECORD_HANDSHAKE:
            self._refuse_plain(data)
            return
        self._started = True
        loop = asyncio.get_running_loop()
        assert self._raw is not None
        loop.create_task(self._handshake(loop, self._raw, data))

    def eof_received(self) -> bool | None:
        if self._started:
            self._early_eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse_plain(self, data: bytes | None) -> None:
        self._timer = None
        raw = self._raw
        if raw is None or raw.is_closing():
            return
        what = "sent no TLS handshake" if data is None else "sent plain text, not TLS"
        self.logger.warning("TLS: refused %s: it %s (a plain TCP client?)", self.peer, what)
        # Built as a Message so the text is escaped, not hand-quoted (no stray quote chars).
        raw.write(bytes(Message.inform("disconnect", "This port requires TLS (use --tls-ca).")))
        raw.close()

    # -- the handshake and the hand-over -------------------------------------------------

    async def _handshake(
        self, loop: asyncio.AbstractEventLoop, raw: asyncio.Transport, first: bytes
    ) -> None:
        start = loop.start_tls(
            raw,
            self,
            self.context,
            server_side=True,
            ssl_handshake_timeout=self.handshake_timeout,
        )
        task = loop.create_task(start)
        # start_tls installs its TLS protocol on `raw` at its first step; the bytes already
        # read (the start of the ClientHello) go to that protocol before its handshake runs.
        loop.call_soon(self._replay, raw, first, task)
        try:
            tls = await task
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as exc:
            self.logger.warning("%s", describe_tls_error(exc, self.peer, server_side=True))
            raw.abort()
            return
        except Exception:
            self.logger.exception("TLS: handshake with %s failed", self.peer)
            raw.abort()
            return
        if tls is None or self._lost:
            return
        inner = self.make_protocol()
        tls.set_protocol(inner)
        inner.connection_made(tls)
        if self._early:
            _deliver(inner, b"".join(self._early))
            self._early.clear()
        if self._early_eof and isinstance(inner, asyncio.Protocol | asyncio.BufferedProtocol):
            inner.eof_received()

    def _replay(self, raw: asyncio.Transport, data: bytes, task: asyncio.Future[Any]) -> None:
        if task.done() or raw.is_closing():
            return
        proto = raw.get_protocol()
        if proto is self:  # start_tls has not taken over yet
            asyncio.get_running_loop().call_soon(self._replay, raw, data, task)
            return
        # start_tls queued the TLS protocol's connection_made when it took over: deliver
        # after it (Python 3.10's TLS protocol drops data that arrives before it).
        asyncio.get_running_loop().call_soon(self._feed, raw, proto, data, task)

    @staticmethod
    def _feed(
        raw: asyncio.Transport, proto: asyncio.BaseProtocol, data: bytes, task: asyncio.Future[Any]
    ) -> None:
        if not task.done() and not raw.is_closing():
            _deliver(proto, data)


def _deliver(proto: Any, data: bytes) -> None:
    """Feed `data` to `proto` through its public protocol interface."""
    if isinstance(proto, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buf = memoryview(proto.get_buffer(len(view)))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            proto.buffer_updated(n)
            view = view[n:]
    else:
        proto.data_received(data)
