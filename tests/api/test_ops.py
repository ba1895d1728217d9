"""Health and readiness need no key and reveal nothing; the metrics are on their own port."""

from __future__ import annotations

from consensus_engine.devtools.loopback import http_request
from consensus_engine.domain.personas import DEFAULT_PERSONAS

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


def test_me_and_options_say_who_calls_and_what_a_run_may_use(api: ApiHarness) -> None:
    assert api.acme.get("/v1/me").json() == {"tenant": "acme"}
    assert api.globex.get("/v1/me").json() == {"tenant": "globex"}
    assert api.anonymous.get("/v1/me").status == 401
    options = api.acme.get("/v1/options").json()
    settings = api.settings
    assert [p["id"] for p in options["personas"]] == [p.id for p in DEFAULT_PERSONAS]
    # No instructions: they are the review's system prompt.
    assert set(options["personas"][0]) == {"id", "name", "weight", "focus", "model"}
    assert options["models"]["expand"] == settings.expand_model
    assert settings.review_model in options["models"]["allowed"]
    assert options["limits"] == {
        "idea": settings.max_idea_length,
        "extra_context": settings.max_extra_context_length,
        "edited_proposal": settings.max_edited_proposal_length,
        "edit_notes": settings.max_edit_notes_length,
    }
    assert options["priorities"] == ["normal", "high"]
    assert api.anonymous.get("/v1/options").status == 401
