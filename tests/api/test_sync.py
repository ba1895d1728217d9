"""``/v1/expand-idea`` and ``/v1/review-idea``: synchronous, bounded, and honest about failures.

The API calls the offline LLM server over real HTTP; failures are scripted on that server
(pushed faults, latency, a key it does not accept), never mocked inside the API.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from consensus_engine.db.models import LlmCall
from consensus_engine.db.rate_limits import DatabaseBuckets
from consensus_engine.devtools.loopback import Response
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.schemas import Decision, ExpandedProposal, PersonaReview
from consensus_engine.llm.rate_limits import Bucket, Draw

from .conftest import ApiFactory, ApiHarness

IDEA = "A shared calendar for the bike club's rides."
_INTERNALS = ("Traceback", "offline server", "sk-", "openai", "127.0.0.1", "httpx", 'File "')


def _envelope(response: Response, status: int, code: str) -> dict[str, Any]:
    """The error body, after checking it is the envelope and leaks nothing internal."""
    assert response.status == status, response.body
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details", "request_id"}
    assert body["code"] == code
    assert body["request_id"] == response.headers.get("x-request-id")
    text = response.body.decode()
    for marker in _INTERNALS:
        assert marker.lower() not in text.lower(), (marker, text)
    return body


def _unowned_calls(api: ApiHarness) -> list[tuple[str, str]]:
    """The ``llm_calls`` rows without a run: the synchronous endpoints' cost records."""
    with api.stack.sessions() as session:
        rows = session.execute(
            sa.select(LlmCall.step, LlmCall.outcome)
            .where(LlmCall.run_id.is_(None))
            .order_by(LlmCall.created_at)
        ).all()
    return [(step, outcome.value) for step, outcome in rows]


def test_expand_and_review_answer_with_complete_results(api: ApiHarness) -> None:
    expanded = api.acme.post("/v1/expand-idea", {"idea": IDEA, "extra_context": "50 members"})
    assert expanded.status == 200, expanded.body
    body = expanded.json()
    proposal = ExpandedProposal.model_validate(body["proposal"])
    assert proposal.title and proposal.proposed_solution
    assert body["model"] == api.settings.expand_model
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    assert body["elapsed_ms"] > 0
    assert _unowned_calls(api) == [("expand", "success")]

    reviewed = api.acme.post("/v1/review-idea", {"idea": IDEA})
    assert reviewed.status == 200, reviewed.body
    body = reviewed.json()
    ExpandedProposal.model_validate(body["proposal"])
    reviews = [PersonaReview.model_validate(item) for item in body["reviews"]]
    assert [r.persona_id for r in reviews] == list(DEFAULT_PERSONAS.ids)
    assert all(r.summary and r.strengths and r.recommendations for r in reviews)
    decision = Decision.model_validate(body["decision"])
    assert sorted(decision.reviewed_personas) == sorted(DEFAULT_PERSONAS.ids)
    assert set(decision.score_breakdown.individual_scores) == set(DEFAULT_PERSONAS.ids)
    assert body["models"] == {
        "expand": api.settings.expand_model,
        "review": api.settings.review_model,
    }
    assert body["usage"]["input_tokens"] > 0
    assert len(_unowned_calls(api)) == 1 + 1 + 5

    chosen = api.acme.post("/v1/review-idea", {"idea": IDEA, "personas": ["critic", "architect"]})
    assert chosen.status == 200, chosen.body
    body = chosen.json()
    assert [r["persona_id"] for r in body["reviews"]] == ["architect", "critic"]
    weights = body["decision"]["score_breakdown"]["weights"]
    assert weights == {"architect": 0.5, "critic": 0.5}


def test_requests_are_checked_before_any_llm_call(make_api: ApiFactory) -> None:
    api = make_api(api={"MAX_IDEA_LENGTH": 50})
    for path in ("/v1/expand-idea", "/v1/review-idea"):
        _envelope(api.anonymous.post(path, {"idea": IDEA}), 401, "UNAUTHORIZED")
        _envelope(api.acme.post(path, {"idea": IDEA}, key="ce_not-a-key"), 401, "UNAUTHORIZED")
        empty = _envelope(api.acme.post(path, {"idea": "   "}), 422, "VALIDATION_ERROR")
        assert empty["message"] == "idea must not be empty"
        assert empty["details"] == [
            {"loc": ["body", "idea"], "msg": "idea must not be empty", "type": "value_error"}
        ]
        long = _envelope(api.acme.post(path, {"idea": "x" * 51}), 422, "VALIDATION_ERROR")
        assert "the limit is 50" in str(long["message"])
        _envelope(api.acme.post(path, {"idea": 42}), 422, "VALIDATION_ERROR")
        _envelope(api.acme.post(path, {"idea": IDEA, "ide": 1}), 422, "VALIDATION_ERROR")
    unknown = api.acme.post("/v1/review-idea", {"idea": IDEA, "personas": ["critic", "pirate"]})
    body = _envelope(unknown, 422, "VALIDATION_ERROR")
    assert body["message"] == f"1 unknown persona id(s); known: {', '.join(DEFAULT_PERSONAS.ids)}"
    assert body["details"][0]["loc"] == ["body", "personas"]  # which field, without echoing it
    assert "pirate" not in unknown.body.decode()
    none = api.acme.post("/v1/review-idea", {"idea": IDEA, "personas": []})
    _envelope(none, 422, "VALIDATION_ERROR")
    assert api.stack.llm.stats()["total"] == 0


def test_a_bad_persona_list_gets_the_same_answer_as_from_runs(api: ApiHarness) -> None:
    """One selection rule: /v1/runs and /v1/review-idea answer the same mistake alike."""
    known = ", ".join(DEFAULT_PERSONAS.ids)
    settings = api.settings
    mistakes: list[tuple[list[str], str | None]] = [
        (["critic", "pirate", "ghost"], f"2 unknown persona id(s); known: {known}"),
        (["critic", "critic"], "persona id(s) chosen twice: critic"),
        (
            [],
            f"a persona set needs between {settings.min_persona_count} and "
            f"{settings.max_persona_count} personas, got 0",
        ),
        (["Not-An-Id"], None),  # refused by the request schema both routes share
    ]
    for personas, message in mistakes:
        bodies: list[dict[str, Any]] = []
        for path in ("/v1/runs", "/v1/review-idea"):
            answer = api.acme.post(path, {"idea": IDEA, "personas": personas})
            body = _envelope(answer, 422, "VALIDATION_ERROR")
            assert "pirate" not in answer.body.decode() and "ghost" not in answer.body.decode()
            del body["request_id"]
            bodies.append(body)
        assert bodies[0] == bodies[1], personas
        if message is not None:
            assert bodies[0]["message"] == message
            assert bodies[0]["details"] == [
                {"loc": ["body", "personas"], "msg": message, "type": "value_error"}
            ]
    assert api.stack.llm.stats()["total"] == 0


def test_llm_failures_become_clear_envelopes(api: ApiHarness) -> None:
    api.stack.llm.push_faults("429")
    limited = api.acme.post("/v1/expand-idea", {"idea": IDEA})
    body = _envelope(limited, 503, "LLM_UNAVAILABLE")
    assert limited.headers.get("retry-after") == "1"
    assert body["details"] == {"retry_after_seconds": 1}

    api.stack.llm.push_faults("500")
    failing = api.acme.post("/v1/review-idea", {"idea": IDEA})
    _envelope(failing, 503, "LLM_UNAVAILABLE")
    assert "retry-after" not in {name.lower() for name in failing.headers}

    api.stack.llm.push_faults("invalid_json", "invalid_json")  # the answer and its repair
    _envelope(api.acme.post("/v1/expand-idea", {"idea": IDEA}), 502, "LLM_BAD_OUTPUT")

    assert _unowned_calls(api) == [
        ("expand", "rate_limited"),
        ("expand", "server_error"),
        ("expand", "invalid_output"),
        ("expand", "invalid_output"),
    ]
    assert api.acme.post("/v1/expand-idea", {"idea": IDEA}).status == 200


def test_a_slow_llm_gives_a_timeout_not_a_hung_request(make_api: ApiFactory) -> None:
    api = make_api(latency_ms=2000, api={"API_SYNC_TIMEOUT_SECONDS": 0.5})
    for path in ("/v1/expand-idea", "/v1/review-idea"):
        body = _envelope(api.acme.post(path, {"idea": IDEA}), 504, "TIMEOUT")
        assert body["details"] == {"timeout_seconds": 0.5}


def test_a_wrong_server_side_llm_key_is_a_bad_gateway(make_api: ApiFactory) -> None:
    api = make_api(api_key="x")  # the offline server wants "x"; the API sends none
    for path in ("/v1/expand-idea", "/v1/review-idea"):
        body = _envelope(api.acme.post(path, {"idea": IDEA}), 502, "LLM_AUTH_ERROR")
        assert "credentials" in str(body["message"])


def test_the_synchronous_endpoints_take_from_the_workers_rate_limits(
    make_api: ApiFactory,
) -> None:
    """One request a minute for the model: the worker's share, taken from the same row in
    the same database, leaves none for the API, which says when to come back."""
    model = "offline-chat"
    api = make_api(
        env={
            "EXPAND_MODEL": model,
            "REVIEW_MODEL": model,
            "MODEL_CATALOGUE_JSON": json.dumps({model: {"free": True, "rpm": 1}}),
            "LLM_CAPACITY_WAIT_SECONDS": "0",
        }
    )
    one = Draw(Bucket.per_minute(1), 1)
    worker = DatabaseBuckets(api.stack.engine)
    try:
        assert worker.take(model, one, None, 0.0).admitted
    finally:
        worker.close()

    refused = api.acme.post("/v1/expand-idea", {"idea": IDEA})

    body = _envelope(refused, 503, "LLM_CAPACITY")
    seconds = int(refused.headers["retry-after"])
    assert one.seconds - 5 < seconds <= one.seconds + 1  # when the bucket has room again
    assert body["details"] == {"retry_after_seconds": seconds}
    assert api.stack.llm.stats()["total"] == 0 and _unowned_calls(api) == []
