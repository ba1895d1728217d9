"""The API's Prometheus metrics: requests by route template, method and status, and latency.

The route is the template (``/v1/runs/{run_id}``), never the raw path, so run ids do not
become label values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
