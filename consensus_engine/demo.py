"""``make demo``: one sample idea through expansion, parallel reviews and aggregation.

With no ``OPENAI_API_KEY`` and no ``OPENAI_BASE_URL`` it starts the offline LLM server,
whose answers are synthetic, and says so.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from consensus_engine.domain.inputs import validate_idea
from consensus_engine.domain.schemas import Decision, PersonaReview
from consensus_engine.llm import LLMClient
from consensus_engine.pipeline.config import (
    expand_choice,
    personas_from_settings,
    review_choice,
)
from consensus_engine.pipeline.inline import review_idea
from consensus_engine.settings import Settings, get_settings

SAMPLE_IDEA = (
    "Let customers of our bike-repair shops book a repair slot online, see the price "
    "estimate up front, and get a text message when the bike is ready."
)


@contextlib.contextmanager
def _llm_client(settings: Settings) -> Iterator[LLMClient]:
    if settings.openai_api_key is not None or settings.openai_base_url is not None:
        target = settings.openai_base_url or "OpenAI"
        print(f"LLM: {target} (models {settings.expand_model} / {settings.review_model})")
        with LLMClient.from_settings(settings) as client:
            yield client
        return
    from consensus_engine.llm.offline import OfflineLLMServer

    with OfflineLLMServer(latency_ms=150) as server:
        print(
            "LLM: no OPENAI_API_KEY or OPENAI_BASE_URL set, so the built-in offline server "
            f"answers at {server.base_url}.\n     Its content is SYNTHETIC: it shows the "
            "pipeline working, not a real judgement."
        )
        client = LLMClient(api_key="offline", base_url=server.base_url, mode="auto")
        with client:
            yield client


def _print_decision(decision: Decision, reviews: list[PersonaReview]) -> None:
    print()
    print(f"Decision: {decision.decision.upper()}  (weighted confidence "
          f"{decision.overall_weighted_confidence:.3f})")
    breakdown = decision.score_breakdown
    print(f"  formula: {breakdown.formula}")
    for review in reviews:
        pid = review.persona_id
        print(
            f"  {review.persona_name:<20} score {breakdown.individual_scores[pid]:.2f}"
            f"  weight {breakdown.weights[pid]:.2f}"
            f"  contribution {breakdown.weighted_contributions[pid]:.3f}"
            f"  blocking points {len(review.blocking_texts)}"
        )
    for rule in decision.rules_applied:
        print(f"  rule: {rule}")
    for report in decision.minority_reports:
        print(f"  minority report, {report.persona_name} ({report.position}): "
              f"{report.blocking_summary}")
    print(f"\n{decision.rationale}")


def run_demo(idea: str | None = None) -> int:
    settings = get_settings()
    personas = personas_from_settings(settings)
    text = validate_idea(SAMPLE_IDEA if idea is None else idea, max_length=settings.max_idea_length)
    print(f"Idea: {text}\nPersonas: {', '.join(personas.ids)}\n")
    started = time.monotonic()
    lock = threading.Lock()

    def progress(step: str, event: str) -> None:
        with lock:
            print(f"  [{time.monotonic() - started:6.2f}s] {step:<28} {event}")

    with _llm_client(settings) as llm:
        result = review_idea(
            llm,
            text,
            None,
            personas=personas,
            expand=expand_choice(settings),
            review=review_choice(settings),
            approve_threshold=settings.approve_threshold,
            revise_threshold=settings.revise_threshold,
            on_progress=progress,
        )
    print(f"\nProposal: {result.proposal.title}\n  {result.proposal.summary}")
    _print_decision(result.decision, result.reviews)
    tokens = sum(c.input_tokens + c.output_tokens for c in result.calls)
    print(f"\n{len(result.calls)} LLM calls, {tokens} tokens, "
          f"{time.monotonic() - started:.2f}s in all")
    return 0
