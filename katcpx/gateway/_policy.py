"""The gateway's per-user access policy: a users file, and the role each request needs.

``katcpx-gateway --users FILE`` (or ``users = "FILE"`` in its config) installs
:class:`UserPolicy` as the access policy hook of :class:`~katcpx.gateway._control.ControlServer`.
The file is the one ``katcpx-web --users`` reads (:mod:`katcpx.web._users`).

What the gateway trusts from a web instance: nothing but the credentials the user
presented. Each control request carries the user's name and the token the browser sent
(``{"user": ..., "token": ...}``); the gateway checks the token against its own copy of
the users file and takes the role from that file. So a web instance cannot raise a user's
role, nor act as a user whose token it never received; a request naming no user gets the
file's ``anonymous_role`` (none by default: refused). Reading a sensor (``read``) stays open
to everyone, as on the web bridge.

Refusals name the request, the role it needs and the user's role, as the device servers'
do: ``Permission denied: ?voltage needs role control; user observer has role read.``
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from ..codec import show_argument
from ..web._users import UserTable, refusal
from ._control import ControlRequest

__all__ = ["UserPolicy"]

log = logging.getLogger("katcpx.gateway")


class UserPolicy:
    """Refuses control requests whose web user may not make them.

    Parameters
    ----------
    users
        The site's users (:func:`katcpx.web._users.load_users`).

    Raises
    ------
    PermissionError
        From :meth:`__call__`, naming why (see the module docstring).
    """

    def __init__(self, users: UserTable) -> None:
        self.users = users

    def __call__(self, request: ControlRequest) -> None:
        """Allow `request` or raise :class:`PermissionError` naming why not."""
        if request.action == "read":
            return  # reading is open, as on the web bridge
        principal = request.principal
        if principal is None:
            why = refusal("a request with no user", self.users.anonymous_role, request.name)
            if why is not None:
                raise PermissionError(why + " (log in with a user's token)")
            return
        if not isinstance(principal, Mapping) or not isinstance(principal.get("user"), str):
            raise PermissionError("Permission denied: the request names no valid user")
        name = principal["user"]
        token = principal.get("token")
        user = self.users.by_name(name)
        if (
            user is None
            or not isinstance(token, str)
            or not hmac.compare_digest(user.token.encode(), token.encode())
        ):
            # One answer for both: a forger learns nothing about which names exist.
            log.warning(
                "refused ?%s on %s: the token presented for user %s is not valid",
                request.name,
                request.device,
                show_argument(name),
            )
            raise PermissionError(
                f"Permission denied: the token presented for user {show_argument(name)} is not valid"
            )
        why = refusal(f"user {user.name}", user.role, request.name, request.args)
        if why is not None:
            log.warning("refused ?%s on %s for user %s", request.name, request.device, user.name)
            raise PermissionError(why)
        log.info(
            "?%s on %s for user %s (role %s)", request.name, request.device, user.name, user.role
        )
