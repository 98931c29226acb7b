"""Serving a Prometheus registry over HTTP, from a thread of its own."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

__all__ = ["MetricsEndpoint", "serve_metrics"]


class MetricsEndpoint:
    """A running metrics HTTP server (prometheus_client's, on a daemon thread).

    Attributes
    ----------
    host, port
        Where it listens (the real port when 0 was asked for).
    """

    def __init__(self, server: object, thread: object, host: str, port: int) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """URL of the metrics page."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()  # type: ignore[attr-defined]
        self._server.server_close()  # type: ignore[attr-defined]


def serve_metrics(
    port: int, host: str = "127.0.0.1", registry: CollectorRegistry | None = None
) -> MetricsEndpoint:
    """Serve `registry` at ``http://host:port/metrics`` (any path answers the same).

    Parameters
    ----------
    port
        Port to listen on; 0 picks a free one.
    host
        Address to listen on.
    registry
        What to serve (default: prometheus_client's global ``REGISTRY``).

    Raises
    ------
    OSError
        If the address cannot be bound.
    """
    server, thread = start_http_server(port, host, REGISTRY if registry is None else registry)
    return MetricsEndpoint(server, thread, host, server.server_port)
