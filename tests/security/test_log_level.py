"""?log-level is per client and never touches the server's own Python logging."""

from __future__ import annotations

import logging

from server.helpers import ExampleServer, connect, running

from katcpx.server import KatcpLogHandler


def test_log_level_is_per_client_and_leaves_python_logging() -> None:
    py_logger = logging.getLogger("test.loglevel")
    py_logger.setLevel(logging.INFO)
    srv = ExampleServer("127.0.0.1", 0, logger=py_logger)
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    with running(srv), connect(srv) as loud, connect(srv) as quiet, connect(srv) as silent:
        assert loud.request("log-level", "debug")[0].arguments == [b"ok", b"debug"]
        assert silent.request("log-level", "off")[0].arguments == [b"ok", b"off"]
        assert quiet.request("log-level")[0].arguments == [b"ok", b"warn"]
        assert py_logger.level == logging.INFO
        srv.log.debug("for the loud one")
        srv.log.warn("for two")
        assert loud.wait_inform("log").arguments[3] == b"for the loud one"
        assert loud.wait_inform("log").arguments[3] == b"for two"
        assert quiet.wait_inform("log").arguments[3] == b"for two"
        # A Python log record through the bridge follows the same per-client levels.
        handler = KatcpLogHandler(srv)
        py_logger.addHandler(handler)
        try:
            py_logger.info("bridged")
        finally:
            py_logger.removeHandler(handler)
        assert loud.wait_inform("log").arguments[3] == b"bridged"
        # The markers: each client's next reply comes after anything sent before it.
        for c in (quiet, silent):
            c.request("watchdog")
            assert [m.arguments[3] for m in c.backlog if m.name == "log"] == []
        assert srv.log.level_name() == "warn"
