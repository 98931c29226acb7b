"""Access control: roles per standard request, policies, refusals, and peers' clients."""

from __future__ import annotations

import asyncio
import logging

import aiokatcp
import pytest
from peers import KatcpPythonClient
from server.helpers import TIMEOUT, Client, running

from katcpx.flags import ProtocolFlags
from katcpx.server.access import AccessPolicy, Grant, Role, load_policy

from .helpers import DeviceWithRequests

LOG = "test.access"


class Device(DeviceWithRequests):
    PROTOCOL_INFO = ProtocolFlags(5, 1, list("MIBT"))


def make_server(policy: AccessPolicy | None, handler_thread: bool = False) -> Device:
    srv = Device("127.0.0.1", 0, logger=logging.getLogger(LOG), access_policy=policy)
    srv.set_concurrency_options(thread_safe=True, handler_thread=handler_thread)
    return srv


def greet(c: Client) -> Client:
    for _ in range(3):
        assert c.read().name == "version-connect"
    return c


READ_ONLY = AccessPolicy("read")

# Every standard request a read client may call, with arguments, and its reply's first word.
ALLOWED = [
    ("help", ()),
    ("help", ("halt",)),
    ("watchdog", ()),
    ("version-list", ()),
    ("client-list", ()),
    ("request-timeout-hint", ()),
    ("sensor-list", ()),
    ("sensor-list", ("/an/",)),
    ("sensor-value", ()),
    ("sensor-value", ("an.int",)),
    ("sensor-sampling", ("an.int",)),
    ("sensor-sampling", ("an.int", "event")),
    ("sensor-sampling", ("an.int,a.float", "period", "10")),
    ("sensor-sampling-clear", ()),
    ("log-level", ()),
    ("peek", ()),
]

REFUSED = [
    ("halt", (), "admin"),
    ("restart", (), "admin"),
    ("log-level", ("debug",), "admin"),
    ("log-level", ("off",), "admin"),
    ("fire", (), "control"),
]


@pytest.fixture(scope="module", params=[False, True], ids=["on-loop", "handler-thread"])
def read_server(request):
    with running(make_server(READ_ONLY, handler_thread=request.param)) as srv:
        yield srv


@pytest.mark.parametrize("name,args", ALLOWED)
def test_read_client_may_read(read_server, name, args) -> None:
    with greet(Client(read_server.bind_address)) as c:
        reply, _ = c.request(name, *args)
        assert reply.arguments[0] == b"ok", reply


@pytest.mark.parametrize("name,args,role", REFUSED)
def test_read_client_is_refused_and_stays_connected(read_server, caplog, name, args, role) -> None:
    caplog.set_level(logging.WARNING, LOG)
    level_before = read_server.log.level_name()
    with greet(Client(read_server.bind_address)) as c:
        reply, _ = c.request(name, *args, mid=7)
        assert reply.arguments[0] == b"fail"
        text = reply.arguments[1].decode()
        assert f"needs role {role}" in text and "has role read" in text
        # The connection is still served.
        assert c.request("watchdog")[0].arguments == [b"ok"]
    assert read_server.running()
    assert read_server.log.level_name() == level_before
    logged = [
        r.getMessage() for r in caplog.records if r.name == LOG and "refused" in r.getMessage()
    ]
    assert any(f"?{name}" in t and "127.0.0.1" in t and "anonymous" in t for t in logged), logged


def test_control_client_may_call_device_requests_but_not_halt() -> None:
    policy = AccessPolicy("read", [Grant(Role.CONTROL, address="127.0.0.0/8")])
    with running(make_server(policy)) as srv, greet(Client(srv.bind_address)) as c:
        assert c.request("fire")[0].arguments == [b"ok", b"fired"]
        assert c.request("halt")[0].arguments[0] == b"fail"
        assert c.request("log-level", "info")[0].arguments[0] == b"fail"
        assert srv.running()


def test_admin_client_may_do_everything() -> None:
    policy = AccessPolicy("read", [Grant(Role.ADMIN, address="127.0.0.1")])
    with running(make_server(policy)) as srv, greet(Client(srv.bind_address)) as c:
        assert c.request("log-level", "info")[0].arguments == [b"ok", b"info"]
        assert c.request("fire")[0].arguments == [b"ok", b"fired"]
        reply = c.request("restart")[0]
        assert reply.arguments[0] == b"fail" and b"restart queue" in reply.arguments[1]
        assert c.request("halt")[0].arguments == [b"ok"]
        srv.join(TIMEOUT)
        assert not srv.running()


def test_client_list_shows_identity_and_role_to_admins() -> None:
    policy = AccessPolicy("read", [Grant(Role.ADMIN, address="127.0.0.1")])
    with running(make_server(policy)) as srv, greet(Client(srv.bind_address)) as c:
        _, informs = c.request("client-list")
        assert informs[0].arguments[1:] == [b"anonymous", b"admin"]


def test_policy_roles() -> None:
    policy = AccessPolicy(
        "read",
        [
            Grant(Role.CONTROL, cert_cn="operator"),
            Grant(Role.ADMIN, address="10.8.0.0/16"),
            Grant(Role.CONTROL, address="192.168.1.7"),
        ],
    )
    assert policy.role_for("10.8.3.4", None) is Role.ADMIN
    assert policy.role_for("::ffff:10.8.3.4", None) is Role.ADMIN
    assert policy.role_for("10.9.0.1", None) is Role.READ
    assert policy.role_for("192.168.1.7", None) is Role.CONTROL
    assert policy.role_for("192.168.1.8", "operator") is Role.CONTROL
    # A certificate grant decides over an address grant.
    assert policy.role_for("10.8.3.4", "operator") is Role.CONTROL
    assert AccessPolicy().role_for("1.2.3.4", None) is Role.ADMIN
    assert AccessPolicy().is_default and not policy.is_default


def test_policy_file(tmp_path) -> None:
    path = tmp_path / "access.toml"
    path.write_text(
        'default_role = "read"\n'
        "[[grant]]\n"
        'cert_cn = "operator"\n'
        'role = "control"\n'
        "[[grant]]\n"
        'address = "10.8.0.0/16"\n'
        'role = "admin"\n'
    )
    policy = load_policy(str(path))
    assert policy.default_role is Role.READ
    assert policy.role_for("10.8.0.9", None) is Role.ADMIN
    assert policy.role_for("127.0.0.1", "operator") is Role.CONTROL


@pytest.mark.parametrize(
    "text,error",
    [
        ('default_role = "boss"\n', "default_role: unknown role 'boss'"),
        (
            'default_role = "read"\n[[grant]]\nrole = "read"\n',
            "grant 1: a grant needs exactly one of cert_cn or address",
        ),
        (
            'default_role = "read"\n[[grant]]\naddress = "10.8.0.0/99"\nrole = "read"\n',
            "grant 1: grant address",
        ),
        ('default_role = "read"\n[[grant]]\naddress = "10.0.0.1"\n', "grant 1: role is missing"),
        ("default_role = \n", "access.toml"),
        ('owner = "me"\n', "unknown keys ['owner']"),
    ],
)
def test_bad_policy_file_names_the_problem(tmp_path, text, error) -> None:
    path = tmp_path / "access.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="access.toml") as info:
        load_policy(str(path))
    assert error in str(info.value)


# -- peers' clients against the default policy ----------------------------------------------


def test_aiokatcp_client_with_default_policy() -> None:
    async def body(address) -> None:
        client = await asyncio.wait_for(aiokatcp.Client.connect(*address), TIMEOUT)
        try:
            reply, _ = await client.request("fire")
            assert reply == [b"fired"]
            _, informs = await client.request("client-list")
            assert len(informs[0].arguments) == 1  # katcp-python's shape by default
            await client.request("log-level", "info")
        finally:
            client.close()
            await client.wait_closed()

    with running(make_server(None)) as srv:
        asyncio.run(body(srv.bind_address))


def test_katcp_python_client_with_default_policy(katcp_python) -> None:
    with running(make_server(AccessPolicy())) as srv:
        with KatcpPythonClient(katcp_python, *srv.bind_address) as client:
            assert client.request("fire").reply.arguments == [b"ok", b"fired"]
            assert client.request("log-level", "info").reply.arguments == [b"ok", b"info"]
            assert client.request("sensor-value", "an.int").reply.reply_ok()


def test_katcp_python_client_sees_refusals(katcp_python) -> None:
    with running(make_server(READ_ONLY)) as srv:
        with KatcpPythonClient(katcp_python, *srv.bind_address) as client:
            reply = client.request("fire").reply
            assert reply.arguments[0] == b"fail" and b"needs role control" in reply.arguments[1]
            assert client.request("sensor-value", "an.int").reply.reply_ok()


def test_client_is_told_its_role_under_a_policy() -> None:
    with running(make_server(READ_ONLY)) as srv, greet(Client(srv.bind_address)) as c:
        assert c.wait_inform("access-role").arguments == [b"read", b"anonymous"]


def test_katcp_cmd_shows_its_role(tmp_path) -> None:
    """katcp-cmd (a real process) prints the role the server gave it."""
    import subprocess
    import sys

    with running(make_server(READ_ONLY)) as srv:
        host, port = srv.bind_address
        out = subprocess.run(
            [sys.executable, "-m", "katcpx.cmd", f"{host}:{port}"],
            input="?watchdog\n?fire\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
    # Shown as katcp-cmd's note, or as the inform when it came after the shell started.
    shown = ("-- role read (anonymous)", "#access-role read anonymous")
    assert any(text in out.stdout for text in shown), out.stdout + out.stderr
    assert "!watchdog ok" in out.stdout
    assert "needs role control" in out.stdout
