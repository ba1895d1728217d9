"""Health, readiness and metrics need no key and reveal nothing."""

from __future__ import annotations

from .conftest import ApiHarness


def test_health_ready_and_metrics_answer_without_a_key(api: ApiHarness) -> None:
    health = api.anonymous.get("/health")
    assert (health.status, health.json()) == (200, {"status": "ok"})
    assert health.headers.get("x-request-id")

    ready = api.anonymous.get("/ready")
    assert ready.status == 200, ready.body
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}

    metrics = api.anonymous.get("/metrics")
    assert metrics.status == 200
    assert b'consensus_api_requests_total{method="GET",route="/health",status="200"} 1.0' in (
        metrics.body
    )
