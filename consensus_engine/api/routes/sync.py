"""The synchronous convenience endpoints: expand an idea, or review it, within one request.

Unlike ``/v1/full-review`` nothing is stored as a run: the answer is the result. The work
runs on the process's bounded pool (``api/sync_runtime.py``), which also records every
LLM attempt for cost accounting and turns an LLM failure or a timeout into its answer.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends

from consensus_engine.api.inputs import idea_and_context, selected_personas
from consensus_engine.api.openapi import errors
from consensus_engine.api.state import PrincipalDep, StateDep, get_principal
from consensus_engine.api.sync_schemas import (
    ExpandIdeaRequest,
    ExpandIdeaResponse,
    ReviewIdeaRequest,
    ReviewIdeaResponse,
    ReviewModels,
    Usage,
)
from consensus_engine.pipeline import inline
from consensus_engine.pipeline.config import expand_choice, review_choice

router = APIRouter(
    prefix="/v1",
    tags=["synchronous"],
    dependencies=[Depends(get_principal)],
    responses=errors(413, 502, 503, 504),
)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@router.post(
    "/expand-idea",
    summary="Expand an idea into a structured proposal, synchronously",
    response_model=ExpandIdeaResponse,
)
async def expand_idea(
    body: ExpandIdeaRequest, state: StateDep, principal: PrincipalDep
) -> ExpandIdeaResponse:
    """One LLM call; nothing is stored as a run. Bounded by ``API_SYNC_TIMEOUT_SECONDS``."""
    started = time.perf_counter()
    idea, context = idea_and_context(body.idea, body.extra_context, state.settings)
    llm = state.sync.llm()
    choice = expand_choice(state.settings)
    proposal, calls = await state.sync.run(
        principal.tenant,
        lambda: inline.expand_idea(llm, idea, context, choice, tenant=principal.tenant),
        lambda result: result[1],
    )
    return ExpandIdeaResponse(
        proposal=proposal,
        usage=Usage.of(calls),
        model=choice.model,
        elapsed_ms=_elapsed_ms(started),
    )


@router.post(
    "/review-idea",
    summary="Expand an idea and have every persona review it, synchronously",
    response_model=ReviewIdeaResponse,
)
async def review_idea(
    body: ReviewIdeaRequest, state: StateDep, principal: PrincipalDep
) -> ReviewIdeaResponse:
    """Expand, review with the personas in parallel, aggregate; nothing is stored as a run.

    Bounded by ``API_SYNC_TIMEOUT_SECONDS``; ``/v1/full-review`` is the durable alternative.
    """
    started = time.perf_counter()
    settings = state.settings
    idea, context = idea_and_context(body.idea, body.extra_context, settings)
    personas = selected_personas(state, body.personas)
    llm = state.sync.llm()
    expand, review = expand_choice(settings), review_choice(settings)
    result = await state.sync.run(
        principal.tenant,
        lambda: inline.review_idea(
            llm,
            idea,
            context,
            personas=personas,
            expand=expand,
            review=review,
            approve_threshold=settings.approve_threshold,
            revise_threshold=settings.revise_threshold,
            tenant=principal.tenant,
        ),
        lambda outcome: outcome.calls,
    )
    return ReviewIdeaResponse(
        proposal=result.proposal,
        reviews=result.reviews,
        decision=result.decision,
        usage=Usage.of(result.calls),
        models=ReviewModels(expand=expand.model, review=review.model),
        elapsed_ms=_elapsed_ms(started),
    )
