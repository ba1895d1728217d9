"""The API's Prometheus metrics: requests by route template, method and status, and latency.

The route is the template (``/v1/runs/{run_id}``), never the raw path, so run ids do not
become label values. They are served on a port of their own, never on the public API port,
so what reaches the API from outside never sees them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "consensus_api_requests",
            "HTTP requests handled by the API.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "consensus_api_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


@contextmanager
def serving(registry: CollectorRegistry, host: str, port: int) -> Iterator[None]:
    """Serve ``registry`` on ``host:port`` (every path) until the block ends; 0: not at all.

    Stopped on exit, so one process can start and stop many APIs (the tests do).
    """
    if port == 0:
        yield
        return
    server, thread = start_http_server(port, host, registry=registry)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
