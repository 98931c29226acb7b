"""Web users: who may change devices through ``katcpx-web``, and with which role.

A users file (``katcpx-web --users FILE``, and the same file for ``katcpx-gateway --users``)
names each user, their role (``read``, ``control`` or ``admin``: the roles of
:mod:`katcpx.server.access`) and the file holding their token::

    anonymous_role = "read"

    [[user]]
    name = "operator"
    role = "control"
    token_file = "operator.token"

A browser presents its token as with ``--token-file`` (``Authorization: Bearer``, or the
websocket's ``auth`` action); the token says who the user is. Which requests a role may call
follows the device servers' rules (:data:`~katcpx.server.access.STANDARD_REQUEST_ROLES`;
every other request needs ``control``). Without Redis ``katcpx-web`` checks the role itself;
with ``--redis`` it passes the user and the token they presented on with each control
request, and the gateway, which holds its own copy of the file, decides (see
``docs/scale-out.md``: a web instance cannot raise a user's role, nor act as a user whose
token it never received).

The user a control request is made for travels in a context variable (:func:`acting_as`,
:func:`caller`), so the sources' ``call`` keeps its signature.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..message import Message
from ..server.access import STANDARD_REQUEST_ROLES, Role

try:
    import tomllib  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

__all__ = [
    "MIN_TOKEN_LENGTH",
    "User",
    "UserTable",
    "acting_as",
    "caller",
    "load_users",
    "principal_of",
    "refusal",
    "role_needed",
]

log = logging.getLogger("katcpx.web")

#: Shorter tokens are warned about at start (a guessable secret).
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class User:
    """One web user: a name, a role and the token that proves it (never shown in repr)."""

    name: str
    role: Role
    token: str = field(repr=False)


@dataclass(frozen=True)
class UserTable:
    """The users of a site, and the role of requests made for nobody in particular.

    Parameters
    ----------
    users
        The users; names and tokens are unique.
    anonymous_role
        Role of a control request that names no user (a web instance without ``--users``);
        ``None`` refuses such requests.
    """

    users: tuple[User, ...] = ()
    anonymous_role: Role | None = None

    def by_token(self, presented: str | None) -> User | None:
        """The user whose token is `presented` (constant-time compares), or None."""
        if presented is None:
            return None
        found = None
        for user in self.users:  # no early exit: the time does not tell which user matched
            if hmac.compare_digest(user.token.encode(), presented.encode()):
                found = user
        return found

    def by_name(self, name: str) -> User | None:
        """The user called `name`, or None."""
        return next((u for u in self.users if u.name == name), None)


def load_users(path: str | Path) -> UserTable:
    """Read a users file (TOML, see the module docstring).

    ``token_file`` is relative to the users file's folder; a token file holds one token
    (surrounding white space removed). ``anonymous_role`` is optional (default: none).

    Raises
    ------
    OSError
        When the users file cannot be read.
    ValueError
        Naming the file and the entry, for invalid TOML, an unknown key or role, a missing
        name, role or token, a repeated name or token, or a token file that cannot be read
        or is empty (naming the user, the users file and the token file). A token shorter
        than :data:`MIN_TOKEN_LENGTH` is logged as a warning.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return table_from_mapping(data, path)


def table_from_mapping(data: Mapping[str, Any], path: Path) -> UserTable:
    """Build a :class:`UserTable` from parsed TOML; see :func:`load_users`."""
    unknown = set(data) - {"anonymous_role", "user"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (allowed: anonymous_role, user)")
    anonymous = None
    if "anonymous_role" in data:
        try:
            anonymous = Role.parse(data["anonymous_role"])
        except ValueError as exc:
            raise ValueError(f"{path}: anonymous_role: {exc}") from None
    entries = data.get("user", [])
    if isinstance(entries, Mapping) or not isinstance(entries, list):
        raise ValueError(f"{path}: write each user as a [[user]] table")
    users: list[User] = []
    for i, entry in enumerate(entries, 1):
        where = f"{path}: user {i}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} is not a table; write it as [[user]]")
        extra = set(entry) - {"name", "role", "token_file"}
        if extra:
            raise ValueError(
                f"{where}: unknown keys {sorted(extra)} (allowed: name, role, token_file)"
            )
        for key in ("name", "role", "token_file"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ValueError(f"{where}: {key} is missing (a string)")
        try:
            role = Role.parse(entry["role"])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        token_path = path.parent / entry["token_file"]
        where = f"{path}: user {entry['name']!r}"
        try:
            token = token_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{where}: token file {token_path}: {exc.strerror or exc}") from None
        if not token:
            raise ValueError(f"{where}: token file {token_path} is empty")
        if len(token) < MIN_TOKEN_LENGTH:
            log.warning(
                "%s: the token in %s has only %d characters (use at least %d, e.g. from "
                "`openssl rand -hex 32`)",
                where,
                token_path,
                len(token),
                MIN_TOKEN_LENGTH,
            )
        user = User(entry["name"], role, token)
        for other in users:
            if other.name == user.name:
                raise ValueError(f"{where}: the name {user.name!r} is used twice")
            if other.token == user.token:
                raise ValueError(f"{where}: {user.name!r} has the token of {other.name!r}")
        users.append(user)
    return UserTable(tuple(users), anonymous)


def role_needed(request: str, args: Sequence[Any] = ()) -> Role:
    """The role request `request` with `args` needs, by the device servers' rules.

    The standard requests need what :data:`~katcpx.server.access.STANDARD_REQUEST_ROLES`
    says (``?log-level`` with an argument needs ``admin``); every other request
    ``control``. A device may ask more of its own requests (``requires_role``); it checks
    that itself against the bridge's or gateway's own identity.
    """
    role = STANDARD_REQUEST_ROLES.get(request, Role.CONTROL)
    if isinstance(role, Role):
        return role
    return role(Message.request(request, *(str(a) for a in args)))


def refusal(who: str, role: Role | None, request: str, args: Sequence[Any] = ()) -> str | None:
    """Why `who` with `role` may not call `request` (None: they may).

    The text follows the device servers' refusal: ``Permission denied: ?voltage needs role
    control; user observer has role read.``
    """
    needed = role_needed(request, args)
    if role is not None and role >= needed:
        return None
    has = f"has role {role}" if role is not None else "has no role"
    return f"Permission denied: ?{request} needs role {needed}; {who} {has}."


_caller: ContextVar[User | None] = ContextVar("katcpx_web_caller", default=None)


@contextmanager
def acting_as(user: User | None) -> Iterator[None]:
    """Make `user` the :func:`caller` of the control requests made inside the block."""
    token = _caller.set(user)
    try:
        yield
    finally:
        _caller.reset(token)


def caller() -> User | None:
    """The user the current control request is made for (None: no user)."""
    return _caller.get()


def principal_of(user: User | None) -> dict[str, str] | None:
    """What a web instance sends the gateway for `user`: the name and the presented token."""
    return None if user is None else {"user": user.name, "token": user.token}
