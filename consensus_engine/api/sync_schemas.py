"""Request and response models of the synchronous endpoints (``api/routes/sync.py``).

Apart from ``api/schemas.py`` only to keep each module short; the documents themselves
(proposal, reviews, decision) are the domain's models, as in the run routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from consensus_engine.api.schemas import PersonaSelection
from consensus_engine.domain.schemas import Decision, ExpandedProposal, PersonaReview
from consensus_engine.llm import CallRecord


class ExpandIdeaRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idea: str = Field(description="the rough idea (MAX_IDEA_LENGTH characters at most)")
    extra_context: str | dict[str, Any] | None = Field(
        default=None,
        description="background as text or a JSON object (MAX_EXTRA_CONTEXT_LENGTH at most)",
    )


class ReviewIdeaRequest(ExpandIdeaRequest):
    personas: PersonaSelection = None


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
