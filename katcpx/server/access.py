"""Access control for device servers: roles, the policy that gives them, and the check.

Three roles, each allowing what the one before it does and more:

``read``
    ``?help``, ``?watchdog``, ``?version-list``, ``?client-list``,
    ``?request-timeout-hint``, ``?sensor-list``, ``?sensor-value``, ``?sensor-sampling``,
    ``?sensor-sampling-clear``, and ``?log-level`` as a query.
``control``
    Every device request (the default for a handler without :func:`requires_role`).
``admin``
    ``?halt``, ``?restart`` and setting ``?log-level``.

An :class:`AccessPolicy` gives each client a role when it connects: from the common name of
its verified TLS client certificate, else from its address (exact or CIDR), else the policy's
default. The default policy gives everyone ``admin``, so servers behave as katcp-python's.
Nothing in the KATCP specification covers access control; this is a katcpx extension.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..message import Message
from ..tls import peer_common_name

__all__ = [
    "AccessPolicy",
    "admit",
    "announce_role",
    "Grant",
    "Role",
    "STANDARD_REQUEST_ROLES",
    "load_policy",
    "refusal",
    "requires_role",
    "show_roles",
    "required_role",
]

_log = logging.getLogger("katcp.server.access")

F = TypeVar("F", bound=Callable[..., Any])


class Role(enum.IntEnum):
    """A client's role; a higher role may do everything a lower one may."""

    READ = 1
    CONTROL = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str | Role) -> Role:
        """The role called `name` (``read``, ``control`` or ``admin``).

        Raises
        ------
        ValueError
            For any other name, listing the valid ones.
        """
        if isinstance(name, Role):
            return name
        try:
            return cls[str(name).upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}: use read, control or admin") from None

    def __str__(self) -> str:
        return self.name.lower()


def _log_level_role(msg: Message) -> Role:
    # A query reads; setting the level is an admin's.
    return Role.ADMIN if msg.arguments else Role.READ


#: Roles of the standard requests, by name; a callable decides from the request message.
STANDARD_REQUEST_ROLES: Mapping[str, Role | Callable[[Message], Role]] = {
    "help": Role.READ,
    "watchdog": Role.READ,
    "version-list": Role.READ,
    "client-list": Role.READ,
    "request-timeout-hint": Role.READ,
    "sensor-list": Role.READ,
    "sensor-value": Role.READ,
    "sensor-sampling": Role.READ,
    "sensor-sampling-clear": Role.READ,
    "log-level": _log_level_role,
    "halt": Role.ADMIN,
    "restart": Role.ADMIN,
}

_ROLE_ATTR = "katcpx_required_role"


def requires_role(role: str | Role | Callable[[Message], Role]) -> Callable[[F], F]:
    """Mark a ``request_*`` handler with the role a client needs to call it.

    Handlers without it need ``control``. `role` may be a callable that takes the request
    message and returns the role, for requests that only read with some arguments.

    Examples
    --------
    >>> from katcpx.server.access import requires_role
    >>> @requires_role("read")
    ... def request_temperature(self, req, msg):
    ...     '''Read the temperature.'''
    """
    required = role if callable(role) and not isinstance(role, Role) else Role.parse(role)

    def decorate(func: F) -> F:
        setattr(func, _ROLE_ATTR, required)
        return func

    return decorate


def _declared_role(name: str, handler: Any) -> Role | Callable[[Message], Role]:
    role = getattr(handler, _ROLE_ATTR, None)
    if role is None:
        role = STANDARD_REQUEST_ROLES.get(name, Role.CONTROL)
    return role


def required_role(name: str, handler: Any, msg: Message) -> Role:
    """The role needed for request `name` handled by `handler`, for this `msg`."""
    role = _declared_role(name, handler)
    return role if isinstance(role, Role) else role(msg)


# Handler -> its declared role (a Role or a callable of the message), filled on first use.
_needed: dict[Any, Role | Callable[[Message], Role]] = {}


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Grant:
    """One rule of a policy: clients matching `cert_cn` or `address` get `role`.

    Parameters
    ----------
    role : Role
        The role given.
    cert_cn : str, optional
        Common name of a verified client certificate.
    address : str, optional
        An IP address or a CIDR network (``10.8.0.0/16``).
    """

    role: Role
    cert_cn: str | None = None
    address: str | None = None
    network: Network | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.cert_cn is None) == (self.address is None):
            raise ValueError("a grant needs exactly one of cert_cn or address")
        object.__setattr__(self, "role", Role.parse(self.role))
        if self.address is not None:
            try:
                net = ipaddress.ip_network(self.address, strict=False)
            except ValueError as exc:
                raise ValueError(f"grant address {self.address!r}: {exc}") from None
            object.__setattr__(self, "network", net)

    def matches(
        self, host: ipaddress.IPv4Address | ipaddress.IPv6Address | None, cn: str | None
    ) -> bool:
        """Whether a client at `host` with certificate name `cn` is granted."""
        if self.cert_cn is not None:
            return cn == self.cert_cn
        return host is not None and self.network is not None and host in self.network


class AccessPolicy:
    """Decides each client's role when it connects.

    Parameters
    ----------
    default_role : str or Role
        Role of clients that no grant matches (``admin`` when not given, as before access
        control existed).
    grants : iterable of Grant
        Rules tried in order; a certificate name grant wins over an address grant, and of
        several matching grants the highest role counts.
    """

    def __init__(self, default_role: str | Role = Role.ADMIN, grants: Iterable[Grant] = ()) -> None:
        self.default_role = Role.parse(default_role)
        self.grants = list(grants)

    @property
    def is_default(self) -> bool:
        """True for a policy that gives everyone ``admin`` (katcp-python's behaviour)."""
        return self.default_role is Role.ADMIN and not self.grants

    def role_for(self, host: str | None, cert_cn: str | None) -> Role:
        """The role of a client at IP address `host` whose verified certificate is `cert_cn`."""
        if not self.grants:
            return self.default_role
        try:
            addr = ipaddress.ip_address(host) if host else None
        except ValueError:
            addr = None
        if addr is not None and addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        by_cn = [g.role for g in self.grants if g.cert_cn is not None and g.matches(addr, cert_cn)]
        if by_cn:
            return max(by_cn)
        by_addr = [
            g.role for g in self.grants if g.address is not None and g.matches(addr, cert_cn)
        ]
        return max(by_addr) if by_addr else self.default_role

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "policy") -> AccessPolicy:
        """Build a policy from parsed TOML (see :func:`load_policy` for the shape).

        Raises
        ------
        ValueError
            Naming `where` and the bad entry.
        """
        unknown = set(data) - {"default_role", "grant"}
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {sorted(unknown)} (allowed: default_role, grant)"
            )
        # Required: a file that forgot it must not make every client admin (fail-open).
        if "default_role" not in data:
            raise ValueError(
                f"{where}: default_role is required (one of read, control, admin); "
                'e.g. default_role = "read"'
            )
        try:
            default = Role.parse(data["default_role"])
        except ValueError as exc:
            raise ValueError(f"{where}: default_role: {exc}") from None
        entries = data.get("grant", [])
        if isinstance(entries, Mapping):
            raise ValueError(
                f"{where}: grant is a single table; write each grant as [[grant]] "
                "(an array of tables), not [grant]"
            )
        grants = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where}: grant {i + 1} is not a table; write it as [[grant]]")
            extra = set(entry) - {"cert_cn", "address", "role"}
            if extra:
                raise ValueError(
                    f"{where}: grant {i + 1}: unknown keys {sorted(extra)} "
                    "(allowed: role, cert_cn, address)"
                )
            if "role" not in entry:
                raise ValueError(
                    f"{where}: grant {i + 1}: role is missing (read, control or admin)"
                )
            try:
                grants.append(
                    Grant(Role.parse(entry["role"]), entry.get("cert_cn"), entry.get("address"))
                )
            except ValueError as exc:
                raise ValueError(f"{where}: grant {i + 1}: {exc}") from None
        return cls(default, grants)

    def unreachable_grants(self, tls: bool, client_certs: bool) -> list[str]:
        """Warnings for certificate-name grants that can never match.

        Parameters
        ----------
        tls : bool
            Whether the server speaks TLS.
        client_certs : bool
            Whether it asks for client certificates (``--tls-ca`` / a CA in its context).

        Returns
        -------
        list of str
            One line per such grant, naming the missing option.
        """
        if tls and client_certs:
            return []
        missing = "TLS (--tls-cert/--tls-key)" if not tls else "client certificates (--tls-ca)"
        return [
            f"grant cert_cn={g.cert_cn!r} (role {g.role}) can never match: the server has no "
            f"{missing}"
            for g in self.grants
            if g.cert_cn is not None
        ]

    def __repr__(self) -> str:
        return f"AccessPolicy(default_role={str(self.default_role)!r}, grants={self.grants!r})"


#: The policy of servers given none: everyone is ``admin``.
DEFAULT_POLICY = AccessPolicy()


def load_policy(path: str) -> AccessPolicy:
    """Read a TOML policy file::

        default_role = "read"
        [[grant]]
        cert_cn = "operator"
        role = "control"
        [[grant]]
        address = "10.8.0.0/16"
        role = "admin"

    Raises
    ------
    OSError
        When the file cannot be read.
    ValueError
        When it is not valid TOML or not of this shape (the message names the file).
    """
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return AccessPolicy.from_mapping(data, where=path)


def admit(conn: Any, transport: Any, policy: AccessPolicy) -> None:
    """Set a new connection's ``identity`` (certificate CN) and ``role`` from `policy`."""
    conn.identity = peer_common_name(transport)
    peername = transport.get_extra_info("peername") if transport is not None else None
    host = peername[0] if isinstance(peername, tuple) else None
    conn.role = policy.role_for(host, conn.identity)


def announce_role(conn: Any, policy: AccessPolicy) -> None:
    """Tell a client its role with ``#access-role <role> <identity>`` (katcp-cmd shows it).

    Servers without a policy send nothing new, as katcp-python's.
    """
    if not policy.is_default:
        conn.inform(Message.inform("access-role", str(conn.role), conn.identity or "anonymous"))


def show_roles(policy: AccessPolicy, conn: Any) -> bool:
    """Whether ``?client-list`` shows identities and roles to `conn`.

    Only admins see them, and only under a policy other than the default, so that servers
    without one answer as katcp-python's do.
    """
    return not policy.is_default and conn.role >= Role.ADMIN


def refusal(
    conn: Any, name: str, handler: Any, msg: Message, logger: logging.Logger | None = None
) -> str | None:
    """Why `conn` may not call request `name`, or None when it may.

    `conn` is a server's client connection with ``role``, ``identity`` and ``address``.
    A refusal is logged with the client's address and identity.
    """
    have: Role = conn.role
    # Every request of a non-admin client comes here: the handler's role is looked up once.
    need = _needed.get(handler)
    if need is None:
        need = _needed[handler] = _declared_role(name, handler)
    if need.__class__ is not Role:
        need = need(msg)  # type: ignore[operator]
    if have >= need:
        return None
    who = conn.identity or "anonymous"
    (logger or _log).warning(
        "refused ?%s from %s (%s): needs role %s, client has role %s",
        name,
        conn.address,
        who,
        need,
        have,
    )
    return f"Permission denied: ?{name} needs role {need}; this client has role {have}."
