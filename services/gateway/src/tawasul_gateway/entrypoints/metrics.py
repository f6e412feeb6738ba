"""The gateway's Prometheus metrics: every answer by route template, method and status, with
its latency. Served on a port of their own (TAWASUL_METRICS_ADDRESS, as the services do), so
they are never reachable through the public API.
"""

from __future__ import annotations

from prometheus_client import Histogram, start_http_server
from tawasul_platform.settings import listening

HTTP_HANDLED = Histogram(
    "tawasul_http_server_handled_seconds",
    "Time from an HTTP request's arrival to its answer's start, by route template (never the "
    "path: it may hold people's data), method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def observe(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_HANDLED.labels(route, method, str(status)).observe(seconds)


def serve(address: str) -> None:
    """/metrics at host:port in prometheus_client's own thread, off the event loop; CannotStart
    naming TAWASUL_METRICS_ADDRESS when it is no host:port or cannot be listened on."""
    listening(
        "TAWASUL_METRICS_ADDRESS", address, lambda host, port: start_http_server(port, addr=host)
    )
