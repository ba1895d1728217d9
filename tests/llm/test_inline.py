"""The in-process pipeline over real HTTP: expansion, parallel reviews, aggregation."""

from __future__ import annotations

import pytest

from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.llm import LLMAuthError
from consensus_engine.pipeline.inline import review_idea

from .conftest import ClientFactory

CHOICE = ModelChoice("gpt-4.1-mini", 0.2)


def test_reviews_run_in_parallel_and_are_attributed_by_us(make_client: ClientFactory) -> None:
    with OfflineLLMServer(latency_ms=200, api_key="k") as slow:
        client = make_client("chat", target=slow, api_key="k")
        result = review_idea(
            client,
            "A shared calendar for climbing gyms.",
            {"budget": "small"},
            personas=DEFAULT_PERSONAS,
            expand=CHOICE,
            review=CHOICE,
            approve_threshold=0.8,
            revise_threshold=0.6,
        )
        stats = slow.stats()

    assert [r.persona_id for r in result.reviews] == list(DEFAULT_PERSONAS.ids)
    assert [r.persona_name for r in result.reviews] == [p.name for p in DEFAULT_PERSONAS]
    assert stats["max_in_flight"] >= 2, "persona reviews did not overlap"
    assert len(result.calls) == 6
    assert result.decision.reviewed_personas == list(DEFAULT_PERSONAS.ids)


def test_subset_of_personas(make_client: ClientFactory) -> None:
    personas = DEFAULT_PERSONAS.select(["critic", "security_guardian"])
    result = review_idea(
        make_client("responses"),
        "Rotate database passwords automatically.",
        None,
        personas=personas,
        expand=CHOICE,
        review=CHOICE,
        approve_threshold=0.8,
        revise_threshold=0.6,
    )
    assert {r.persona_id for r in result.reviews} == {"critic", "security_guardian"}
    assert set(result.decision.score_breakdown.weights) == {"critic", "security_guardian"}


def test_auth_failure_surfaces_as_a_permanent_error(make_client: ClientFactory) -> None:
    with pytest.raises(LLMAuthError) as caught:
        review_idea(
            make_client("chat", api_key="wrong-key"),
            "Anything.",
            None,
            personas=DEFAULT_PERSONAS,
            expand=CHOICE,
            review=CHOICE,
            approve_threshold=0.8,
            revise_threshold=0.6,
        )
    assert not caught.value.transient
    assert "wrong-key" not in str(caught.value)
