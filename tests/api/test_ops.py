"""Health and readiness need no key and reveal nothing; the metrics are on their own port."""

from __future__ import annotations

from consensus_engine.devtools.loopback import http_request

from .conftest import ApiHarness


def test_health_and_ready_answer_without_a_key(api: ApiHarness) -> None:
    health = api.anonymous.get("/health")
    assert (health.status, health.json()) == (200, {"status": "ok"})
    assert health.headers.get("x-request-id")

    ready = api.anonymous.get("/ready")
    assert ready.status == 200, ready.body
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_metrics_port_counts_the_api_requests(api: ApiHarness) -> None:
    assert api.anonymous.get("/health").status == 200
    metrics = http_request(api.metrics_url)
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert b'consensus_api_requests_total{method="GET",route="/health",status="200"} 1.0' in (
        metrics.body
    )
