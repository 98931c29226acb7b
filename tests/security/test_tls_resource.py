"""Resources and containers over TLS, with mutual TLS and a CN grant."""

from __future__ import annotations

import logging

from server.helpers import TIMEOUT, running

from katcpx.resource import KATCPClientResource, KATCPClientResourceContainer
from katcpx.server.access import AccessPolicy, Grant, Role

from .helpers import DeviceWithRequests, Pki


def server(pki: Pki) -> DeviceWithRequests:
    policy = AccessPolicy("read", [Grant(Role.CONTROL, cert_cn="operator")])
    srv = DeviceWithRequests(
        "127.0.0.1",
        0,
        logger=logging.getLogger("test.tls.resource"),
        ssl_context=pki.server_ctx(mutual=True),
        access_policy=policy,
    )
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    return srv


async def test_resource_over_mutual_tls(pki: Pki) -> None:
    with running(server(pki)) as srv:
        res = KATCPClientResource(
            {
                "name": "dev",
                "address": srv.bind_address,
                "controlled": True,
                "ssl_context": pki.client_ctx("operator"),
            }
        )
        res.start()
        try:
            await res.until_synced(TIMEOUT)
            assert (await res.sensor.an_int.get_value()) == 3
            reply = await res.req.fire()
            assert reply.succeeded and reply.reply.arguments == [b"ok", b"fired"]
        finally:
            res.stop()


async def test_container_passes_tls_to_its_clients(pki: Pki) -> None:
    with running(server(pki)) as srv:
        spec = {
            "name": "site",
            "clients": {
                "op": {
                    "address": srv.bind_address,
                    "controlled": True,
                    "ssl_context": pki.client_ctx("operator"),
                },
                "viewer": {
                    "address": srv.bind_address,
                    "controlled": True,
                    "ssl_context": pki.client_ctx("viewer"),
                },
            },
        }
        container = KATCPClientResourceContainer(spec)
        container.start()
        try:
            await container.until_synced(TIMEOUT)
            assert (await container.req.op_fire()).succeeded
            refused = await container.req.viewer_fire()
            assert not refused.succeeded
            assert b"needs role control" in refused.reply.arguments[1]
            assert (await container.req.viewer_peek()).succeeded
        finally:
            container.stop()
