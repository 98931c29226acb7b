"""Guarding the web bridge: who may change a device, and input that must never hurt it.

Reading (the dashboard, ``GET``, websocket subscriptions) stays open. Changing a device
(REST ``POST`` of a request, websocket ``set``) needs, under ``--token-file``, the token:
``Authorization: Bearer <token>`` over REST, a first ``{"action": "auth", "token": ...}``
message over the websocket. Bound to an address other than loopback without a token the
bridge serves read-only unless ``--allow-anonymous-control``.

Browsers attach cookies and send simple cross-origin ``POST`` forms on any page's behalf, so
a state change over REST also needs ``Content-Type: application/json`` (a cross-origin page
cannot send that without a CORS preflight, which the bridge never grants) and, when the
browser names one, an ``Origin`` of the bridge itself or of ``--allow-origin``.

Input from browsers is parsed by :func:`loads`: no ``NaN``/``Infinity`` (they cannot be
echoed back as JSON), at most :data:`MAX_JSON_DEPTH` levels of nesting, and a request's
formatted size is checked against the device's maximum message size before it is sent, so
an over-long argument is refused with 413 instead of making the device drop the link.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..message import Message
from ..parser import DEFAULT_MAX_MSG_SIZE
from ..tls import build_context
from ._hub import HubError
from ._users import MIN_TOKEN_LENGTH, User, UserTable, load_users, refusal

__all__ = [
    "MAX_JSON_DEPTH",
    "Forbidden",
    "Guard",
    "RequestTooLong",
    "Unauthorized",
    "check_request_size",
    "is_loopback",
    "loads",
    "read_token_file",
]

log = logging.getLogger("katcp.web")

#: Deepest nesting of arrays and objects accepted in a browser's JSON (up to twice this
#: where arrays and objects alternate; far below what would exhaust the stack).
MAX_JSON_DEPTH = 32
#: Longest JSON message or body accepted from a browser, in bytes: twice the largest
#: request a device takes.
MAX_JSON_BYTES = 2 * DEFAULT_MAX_MSG_SIZE


class Unauthorized(HubError):
    """A change without the token (HTTP 401)."""

    code = "unauthorized"
    http_status = 401


class Forbidden(HubError):
    """A change the bridge refuses whatever the token: read-only, or cross-origin (403)."""

    code = "forbidden"
    http_status = 403


class RequestTooLong(HubError):
    """A request longer than the device accepts (HTTP 413)."""

    code = "request_too_long"
    http_status = 413


class BadJSON(HubError):
    """Browser input that is not acceptable JSON (HTTP 400)."""

    code = "invalid_json"
    http_status = 400


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (JSON has no such number)")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is too large")
    return value


def loads(text: str | bytes) -> Any:
    """Parse browser JSON strictly.

    Raises
    ------
    BadJSON
        For invalid JSON, ``NaN``/``Infinity``, or nesting deeper than
        :data:`MAX_JSON_DEPTH`; the message says which.
    RequestTooLong
        For text longer than :data:`MAX_JSON_BYTES`.
    """
    if len(text) > MAX_JSON_BYTES:
        raise RequestTooLong(
            f"a message of {len(text)} bytes is longer than the {MAX_JSON_BYTES} the bridge takes"
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJSON(f"invalid JSON: {exc}") from None
    if _too_deep(text):
        raise BadJSON(f"invalid JSON: nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise BadJSON(f"invalid JSON: {exc}") from None


def _too_deep(text: str) -> bool:
    """Whether arrays and objects nest deeper than :data:`MAX_JSON_DEPTH` (before parsing).

    Runs in C-speed regex passes (at most :data:`MAX_JSON_DEPTH` of them), so a huge
    message cannot stall the loop: strings are dropped, then everything but brackets, then
    each pass removes the innermost empty pairs. Unbalanced text is left to the parser.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    skeleton = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    for _ in range(MAX_JSON_DEPTH):
        # Each pass peels at least one level (two where [] and {} alternate).
        peeled = skeleton.replace("[]", "").replace("{}", "")
        if not peeled or len(peeled) == len(skeleton):
            return False
        skeleton = peeled
    return True


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def check_request_size(name: str, args: list[Any], limit: int = DEFAULT_MAX_MSG_SIZE) -> None:
    """Refuse a request whose wire form would be longer than the device accepts.

    Raises
    ------
    RequestTooLong
        Naming the size and the limit (bytes).
    """
    # A cheap bound first: formatting escapes, so the wire form is at least this long.
    rough = sum(len(a) if isinstance(a, str | bytes) else 0 for a in args)
    if rough <= limit // 2 and len(args) < limit // 16:
        return
    try:
        size = len(bytes(Message.request(name, *[_arg(a) for a in args], mid=999999)))
    except (TypeError, ValueError):
        return  # the call itself reports bad arguments
    if size > limit:
        raise RequestTooLong(
            f"request ?{name} would be {size} bytes on the wire, more than the device's "
            f"{limit}-byte maximum message size"
        )


def _arg(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether browser `origin` is the bridge at `host` (``host:port``) over `scheme`.

    The scheme counts: a page served over plain HTTP is another origin than an HTTPS
    bridge on the same host and port (RFC 6454 section 4).
    """
    parts = urlsplit(origin)
    return parts.scheme.lower() == scheme.lower() and parts.netloc.lower() == host.lower()


def read_token_file(path: str) -> str:
    """The token in `path` (surrounding white space removed).

    Raises
    ------
    ValueError
        When the file is empty; ``OSError`` when it cannot be read.
    """
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        raise ValueError(f"token file {path} is empty")
    if len(token) < MIN_TOKEN_LENGTH:
        log.warning(
            "--token-file %s: the token has only %d characters (use at least %d, e.g. "
            "from `openssl rand -hex 32`)",
            path,
            len(token),
            MIN_TOKEN_LENGTH,
        )
    return token


def is_loopback(host: str | None) -> bool:
    """Whether listening on `host` reaches only this machine."""
    if host in ("localhost",):
        return True
    if not host:
        return False  # every interface
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Guard:
    """Decides whether a browser may change devices.

    Parameters
    ----------
    token
        The secret a change needs, or None.
    control
        Whether changes are allowed at all without a token (False: read-only).
    allowed_origins
        Browser origins besides the bridge's own that may send changes.
    users
        Users (``--users``), each with a token and a role; their tokens work as `token`.
    remote_roles
        Whether the users' roles are checked elsewhere (the gateway, with ``--redis``)
        rather than by :meth:`user_for`.
    """

    token: str | None = None
    control: bool = True
    allowed_origins: tuple[str, ...] = ()
    users: UserTable | None = None
    remote_roles: bool = False

    @property
    def guarded(self) -> bool:
        """Whether changes need a token (a site token or a users file is set)."""
        return self.token is not None or bool(self.users and self.users.users)

    @classmethod
    def for_site(
        cls,
        host: str | None,
        token: str | None,
        allow_anonymous_control: bool,
        allowed_origins: tuple[str, ...] = (),
        users: UserTable | None = None,
        remote_roles: bool = False,
    ) -> Guard:
        """The guard for a bridge bound to `host` (the rules of ``katcpx-web``)."""
        guard = cls(token, True, tuple(allowed_origins), users, remote_roles)
        guard.control = guard.guarded or allow_anonymous_control or is_loopback(host)
        return guard

    @property
    def mode(self) -> str:
        """``token``, ``open`` or ``read-only`` (the websocket's hello tells the dashboard)."""
        if self.guarded:
            return "token"
        return "open" if self.control else "read-only"

    def describe(self) -> str:
        """One line for the start-up banner."""
        if self.users and self.users.users:
            checked = "by the gateway" if self.remote_roles else "here"
            return (
                f"changes need a user's token ({len(self.users.users)} users; roles checked "
                f"{checked})"
            )
        if self.token is not None:
            return "changes need the token (Authorization: Bearer, or a websocket auth message)"
        if self.control:
            return "anyone who reaches it may change devices (no --token-file)"
        return (
            "read-only: bound beyond loopback without --token-file "
            "(--allow-anonymous-control to allow changes)"
        )

    def announce(self, host: str | None) -> None:
        """Log at start how changes are guarded (a warning unless safe: token, or loopback)."""
        safe = self.guarded or (self.control and is_loopback(host))
        log.log(logging.INFO if safe else logging.WARNING, "katcpx-web: %s", self.describe())

    def token_ok(self, presented: str | None) -> bool:
        """Whether `presented` is the token or a user's (constant-time compare)."""
        if presented is None:
            return False
        if self.users is not None and self.users.by_token(presented) is not None:
            return True
        if self.token is None:
            return False
        return hmac.compare_digest(self.token.encode(), presented.encode())

    def user_for(self, presented: str | None, request: str, args: list[Any]) -> User | None:
        """The user whose token is `presented`, allowed to call `request` with `args`.

        Call after :meth:`authorize`. Without ``--redis`` the user's role is checked here;
        with it the gateway checks it (``remote_roles``).

        Raises
        ------
        Forbidden
            When the user's role is too low, naming the role needed and the user's.
        """
        if self.users is None:
            return None
        user = self.users.by_token(presented)
        if user is not None and not self.remote_roles:
            why = refusal(f"user {user.name}", user.role, request, args)
            if why is not None:
                log.warning("refused ?%s for user %s (role %s)", request, user.name, user.role)
                raise Forbidden(why)
        return user

    def authorize(self, presented: str | None) -> None:
        """Raise unless a change with token `presented` (None: none given) is allowed.

        Raises
        ------
        Unauthorized
            A token is needed and none, or a wrong one, was given.
        Forbidden
            The bridge is read-only.
        """
        if self.guarded:
            if presented is None:
                raise Unauthorized("this change needs the bridge's token")
            if not self.token_ok(presented):
                raise Unauthorized("wrong token")
            return
        if not self.control:
            raise Forbidden("the bridge is read-only (no --token-file)")

    def check_origin(self, origin: str | None, host: str, scheme: str = "http") -> None:
        """Refuse a change from another browser origin than the bridge's own.

        Raises
        ------
        Forbidden
            Naming the origin.
        """
        if origin is None or "*" in self.allowed_origins or origin in self.allowed_origins:
            return
        if same_origin(origin, host, scheme):
            return
        raise Forbidden(f"cross-origin change from {origin} refused")

    def authorize_http(self, handler: Any) -> None:
        """Check a state-changing HTTP request (a tornado ``RequestHandler``).

        Raises
        ------
        HubError
            ``Forbidden`` (403) for a cross-origin request, 415 for a body that is not
            declared JSON, ``Unauthorized`` (401) without the token.
        """
        req = handler.request
        self.check_origin(req.headers.get("Origin"), req.host, req.protocol)
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if req.body.strip() and ctype != "application/json":
            raise UnsupportedMediaType(
                f"a change needs Content-Type: application/json, not {ctype or 'none'!r}"
            )
        presented = bearer(handler)
        try:
            self.authorize(presented)
        except HubError:
            log.warning("refused %s %s from %s", req.method, req.path, req.remote_ip)
            raise


def bearer(handler: Any) -> str | None:
    """The token of an ``Authorization: Bearer`` header of a tornado handler's request."""
    auth = handler.request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


class UnsupportedMediaType(HubError):
    """A change whose body is not declared JSON (HTTP 415)."""

    code = "unsupported_media_type"
    http_status = 415


#: The guard of a bridge given none: changes allowed, as before guards existed.
OPEN = Guard()


def guard_of(settings: dict[str, Any]) -> Guard:
    """The guard in a tornado application's settings (:data:`OPEN` when none)."""
    guard = settings.get("katcpx_guard")
    return guard if isinstance(guard, Guard) else OPEN


# -- katcpx-web's command line -------------------------------------------------------------


def add_web_security_arguments(parser: argparse.ArgumentParser) -> None:
    """``--token-file``, ``--allow-anonymous-control`` and the TLS flags of ``katcpx-web``.

    ``--tls-cert``/``--tls-key`` serve HTTPS and WSS to browsers and are the bridge's client
    certificate towards devices that require one; ``--tls-ca`` turns TLS on towards the
    devices and verifies them with that CA.
    """
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="file holding the token that changing a device needs (reading stays open)",
    )
    parser.add_argument(
        "--users",
        metavar="FILE",
        help="TOML file of users, each with a role and a token file (docs/security.md)",
    )
    parser.add_argument(
        "--allow-anonymous-control",
        action="store_true",
        help="allow changes without a token even when bound beyond loopback",
    )
    group = parser.add_argument_group("TLS")
    group.add_argument(
        "--tls-cert", metavar="FILE", help="own certificate: HTTPS/WSS, and towards devices"
    )
    group.add_argument("--tls-key", metavar="FILE", help="own private key")
    group.add_argument(
        "--tls-ca", metavar="FILE", help="CA of the devices' certificates; turns device TLS on"
    )


def web_security(
    args: argparse.Namespace,
    host: str,
    allowed_origins: tuple[str, ...],
    remote_roles: bool = False,
) -> tuple[Guard, ssl.SSLContext | None]:
    """The guard and the browser-side TLS context the command line asks for.

    `remote_roles`: the users' roles are checked by the gateway (``--redis``).

    Raises
    ------
    SystemExit
        With a one-line message for an unreadable token or certificate file.
    """
    token = None
    if args.token_file:
        try:
            token = read_token_file(args.token_file)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"katcpx-web: --token-file: {exc}") from None
    users = None
    if getattr(args, "users", None):
        try:
            users = load_users(args.users)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"katcpx-web: --users: {exc}") from None
        shared = users.by_token(token) if token is not None else None
        if shared is not None:
            # One secret, two meanings: whoever holds it is both the site and that user.
            raise SystemExit(
                f"katcpx-web: --token-file {args.token_file} holds the token of user "
                f"{shared.name!r} in --users {args.users}: give each its own token"
            )
    guard = Guard.for_site(
        host, token, args.allow_anonymous_control, allowed_origins, users, remote_roles
    )
    browser = None
    if args.tls_cert or args.tls_key:
        if not args.tls_cert:
            raise SystemExit("katcpx-web: --tls-key needs --tls-cert (the certificate of that key)")
        browser = build_context(
            "katcpx-web", server=True, cert=args.tls_cert, key=args.tls_key, ca=None
        )
    return guard, browser


def device_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The context for the links to the devices (``--tls-ca``), or None for plain TCP."""
    if not args.tls_ca:
        return None
    return build_context(
        "katcpx-web", server=False, cert=args.tls_cert, key=args.tls_key, ca=args.tls_ca
    )
