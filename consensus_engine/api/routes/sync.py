"""The synchronous convenience endpoints: expand an idea, or review it, within one request.

Unlike ``/v1/full-review`` nothing is stored as a run: the answer is the result. The work
runs on a small per-process pool and the request waits at most ``API_SYNC_TIMEOUT_SECONDS``
for it; past that the client gets 504 ``TIMEOUT`` while the work already started goes on in
the background until the LLM answers or times out (``LLM_TIMEOUT_SECONDS``), because a
thread blocked in an HTTP call cannot be interrupted. Work still waiting for a free thread
at that point is dropped. Every LLM attempt is kept in ``llm_calls`` (without a run) so
these requests show up in cost accounting.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from consensus_engine.api.errors import ApiError, invalid
from consensus_engine.api.inputs import idea_and_context
from consensus_engine.api.schemas import ErrorEnvelope
from consensus_engine.api.state import ApiState, StateDep, get_principal
from consensus_engine.db import repository
from consensus_engine.domain.personas import PersonaConfigError, PersonaSet
from consensus_engine.domain.schemas import Decision, ExpandedProposal, PersonaReview
from consensus_engine.llm import (
    CallRecord,
    LLMAuthError,
    LLMClient,
    LLMConfigurationError,
    LLMError,
    LLMInvalidOutputError,
    LLMQuotaError,
    LLMTransientError,
    PricingError,
)
from consensus_engine.pipeline import inline
from consensus_engine.pipeline.config import expand_choice, review_choice
from consensus_engine.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_CONCURRENT_REQUESTS = 16
"""Synchronous requests worked on at once per process; more wait (within their timeout)."""


class SyncRuntime:
    """What the synchronous endpoints share in one process: the LLM client and the pool.

    The client is built on first use, so an API that never serves these endpoints needs
    no LLM configuration, and once, so all requests share one connection pool.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._llm: LLMClient | None = None
        self.closed = False
        self.pool = ThreadPoolExecutor(
            max_workers=MAX_CONCURRENT_REQUESTS, thread_name_prefix="sync-llm"
        )

    def llm(self, settings: Settings) -> LLMClient:
        with self._lock:
            if self._llm is None:
                self._llm = LLMClient.from_settings(settings)
            return self._llm

    def close(self) -> None:
        self.closed = True
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = SyncRuntime()
    app.state.sync_runtime = runtime
    try:
        yield
    finally:
        runtime.close()


def get_runtime(request: Request) -> SyncRuntime:
    runtime: SyncRuntime = request.app.state.sync_runtime
    return runtime


RuntimeDep = Annotated[SyncRuntime, Depends(get_runtime)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "no valid API key"},
    413: {"model": ErrorEnvelope, "description": "the request body is too large"},
    422: {"model": ErrorEnvelope, "description": "the idea, context or persona list is invalid"},
    429: {"model": ErrorEnvelope, "description": "rate limit of this API key exceeded"},
    500: {"model": ErrorEnvelope, "description": "unexpected server error"},
    502: {
        "model": ErrorEnvelope,
        "description": "the LLM refused this server's credentials (LLM_AUTH_ERROR), answered "
        "with unusable output (LLM_BAD_OUTPUT) or rejected the request (LLM_ERROR)",
    },
    503: {
        "model": ErrorEnvelope,
        "description": "the LLM is rate-limiting, failing, unreachable or not configured "
        "(LLM_UNAVAILABLE, LLM_NOT_CONFIGURED); Retry-After when known",
    },
    504: {"model": ErrorEnvelope, "description": "not done within API_SYNC_TIMEOUT_SECONDS"},
}

router = APIRouter(
    prefix="/v1",
    tags=["synchronous"],
    lifespan=_lifespan,
    dependencies=[Depends(get_principal)],
    responses=_ERRORS,
)


class ExpandIdeaRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idea: str = Field(description="the rough idea (MAX_IDEA_LENGTH characters at most)")
    extra_context: str | dict[str, Any] | None = Field(
        default=None,
        description="background as text or a JSON object (MAX_EXTRA_CONTEXT_LENGTH at most)",
    )


class ReviewIdeaRequest(ExpandIdeaRequest):
    personas: list[str] | None = Field(
        default=None,
        description="ids of the personas to ask (all configured personas by default); their "
        "weights are rescaled to sum to 1",
    )


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    cost_usd: float = Field(description="estimated from the configured price table")

    @classmethod
    def of(cls, calls: Sequence[CallRecord]) -> Usage:
        cost = sum((call.cost_usd for call in calls), Decimal(0))
        return cls(
            input_tokens=sum(call.input_tokens for call in calls),
            output_tokens=sum(call.output_tokens for call in calls),
            cost_usd=float(cost),
        )


class ExpandIdeaResponse(BaseModel):
    proposal: ExpandedProposal
    usage: Usage
    model: str = Field(description="the model that wrote the proposal")
    elapsed_ms: float


class ReviewModels(BaseModel):
    expand: str
    review: str


class ReviewIdeaResponse(BaseModel):
    proposal: ExpandedProposal
    reviews: list[PersonaReview] = Field(description="every persona's full review, in order")
    decision: Decision
    usage: Usage
    models: ReviewModels
    elapsed_ms: float


def _personas(state: ApiState, ids: list[str] | None) -> PersonaSet:
    if ids is None:
        return state.personas
    settings = state.settings
    known = state.personas
    unknown = [index for index, persona_id in enumerate(ids) if persona_id not in known]
    if unknown:  # named by position: an id the client made up is not echoed back
        raise invalid(
            ("personas", unknown[0]),
            f"{len(unknown)} unknown persona id(s); known: {', '.join(known.ids)}",
        )
    try:
        return state.personas.select(
            ids, min_count=settings.min_persona_count, max_count=settings.max_persona_count
        )
    except PersonaConfigError as error:
        raise invalid("personas", str(error)) from None


def _llm(runtime: SyncRuntime, settings: Settings) -> LLMClient:
    try:
        return runtime.llm(settings)
    except (LLMConfigurationError, PricingError) as error:
        logger.error("cannot build the LLM client for the synchronous endpoints: %s", error)
        raise ApiError(
            503, "LLM_NOT_CONFIGURED", "the LLM is not configured on this server"
        ) from None


def _record(runtime: SyncRuntime, state: ApiState, calls: Sequence[CallRecord]) -> None:
    """Keep each attempt for cost accounting; losing them must not fail the request.

    Work that outlived its request can end after the API shut down; its engine is gone then.
    """
    if not calls or runtime.closed:
        return
    try:
        with state.sessions.begin() as session:
            repository.record_llm_calls(session, None, calls)
    except SQLAlchemyError as error:
        logger.warning("could not store %d synchronous LLM call(s): %s", len(calls), error)


def _llm_error(error: LLMError) -> ApiError:
    """A client-facing error for an LLM failure: a stable code, nothing from the provider."""
    if isinstance(error, LLMAuthError):
        return ApiError(
            502,
            "LLM_AUTH_ERROR",
            "the LLM provider rejected this server's credentials; contact the operator",
        )
    if isinstance(error, LLMInvalidOutputError):
        return ApiError(
            502, "LLM_BAD_OUTPUT", "the LLM answered with output that could not be used; try again"
        )
    if isinstance(error, LLMTransientError | LLMQuotaError):
        headers = None
        details = None
        if error.retry_after is not None:
            seconds = max(1, math.ceil(error.retry_after))
            headers = {"Retry-After": str(seconds)}
            details = {"retry_after_seconds": seconds}
        return ApiError(
            503,
            "LLM_UNAVAILABLE",
            "the LLM provider is unavailable or rate-limiting; try again later",
            details=details,
            headers=headers,
        )
    return ApiError(502, "LLM_ERROR", "the LLM provider could not complete the request")


def _bounded(
    runtime: SyncRuntime,
    state: ApiState,
    work: Callable[[], T],
    calls_of: Callable[[T], Sequence[CallRecord]],
) -> T:
    """``work()`` on the pool, waited for at most ``API_SYNC_TIMEOUT_SECONDS``."""

    def job() -> T:
        try:
            result = work()
        except LLMError as error:
            _record(runtime, state, error.calls)
            raise
        _record(runtime, state, calls_of(result))
        return result

    timeout = state.settings.api_sync_timeout_seconds
    future: Future[T] = runtime.pool.submit(job)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        future.cancel()  # only succeeds if it never started
        raise ApiError(
            504,
            "TIMEOUT",
            f"not done within {timeout:g} s; POST /v1/full-review runs long work in the background",
            details={"timeout_seconds": timeout},
        ) from None
    except LLMError as error:
        logger.warning("synchronous LLM work failed: %s (%s)", error.code, error.message)
        raise _llm_error(error) from None


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@router.post(
    "/expand-idea",
    summary="Expand an idea into a structured proposal, synchronously",
    response_model=ExpandIdeaResponse,
)
def expand_idea(
    body: ExpandIdeaRequest, state: StateDep, runtime: RuntimeDep
) -> ExpandIdeaResponse:
    """One LLM call; nothing is stored as a run. Bounded by ``API_SYNC_TIMEOUT_SECONDS``."""
    started = time.perf_counter()
    idea, context = idea_and_context(body.idea, body.extra_context, state.settings)
    llm = _llm(runtime, state.settings)
    choice = expand_choice(state.settings)
    proposal, calls = _bounded(
        runtime,
        state,
        lambda: inline.expand_idea(llm, idea, context, choice),
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
def review_idea(
    body: ReviewIdeaRequest, state: StateDep, runtime: RuntimeDep
) -> ReviewIdeaResponse:
    """Expand, review with the personas in parallel, aggregate; nothing is stored as a run.

    Bounded by ``API_SYNC_TIMEOUT_SECONDS``; ``/v1/full-review`` is the durable alternative.
    """
    started = time.perf_counter()
    settings = state.settings
    idea, context = idea_and_context(body.idea, body.extra_context, settings)
    personas = _personas(state, body.personas)
    llm = _llm(runtime, settings)
    expand, review = expand_choice(settings), review_choice(settings)
    result = _bounded(
        runtime,
        state,
        lambda: inline.review_idea(
            llm,
            idea,
            context,
            personas=personas,
            expand=expand,
            review=review,
            approve_threshold=settings.approve_threshold,
            revise_threshold=settings.revise_threshold,
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
