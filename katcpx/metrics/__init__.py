"""Prometheus metrics: device sensors (``katcp_*``) and katcpx's own health (``katcpx_*``).

- :class:`SensorExporter` turns the sensors of client resources into metrics; katcpx-web
  serves them at ``/metrics`` and ``katcpx-exporter`` does so without the web UI.
- :func:`instrument_server`, :func:`instrument_client` and :func:`instrument_resource` count
  a server's, client's or resource's health (``server.start_metrics_server(port)`` is the
  short way for a server); :func:`serve_metrics` serves a registry over HTTP.

The metric names are listed in ``docs/monitoring.md``.
"""

from __future__ import annotations

from ._endpoint import MetricsEndpoint, serve_metrics
from ._health import instrument_client, instrument_resource, instrument_server
from ._sensors import SensorExporter
from ._stats import ClientStats, ResourceStats, ServerStats

__all__ = [
    "ClientStats",
    "MetricsEndpoint",
    "ResourceStats",
    "SensorExporter",
    "ServerStats",
    "instrument_client",
    "instrument_resource",
    "instrument_server",
    "serve_metrics",
]
