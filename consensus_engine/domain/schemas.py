"""The documents a run produces: the proposal, each persona's review and the decision.

Two kinds of model live here. ``*Draft`` models are what an LLM is asked to
return: every field required, lists bounded, so that strict structured output
can enforce them. The stored models add what *we* know and the model must not
decide, such as which persona wrote a review.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = "1.0.0"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
Item = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2_000)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Draft(BaseModel):
    """LLM output: unknown keys (a model volunteering ``persona_id``, say) are dropped."""

    model_config = ConfigDict(extra="ignore", frozen=True)


PROPOSAL_SECTIONS: tuple[str, ...] = (
    "title",
    "summary",
    "problem_statement",
    "proposed_solution",
    "assumptions",
    "scope_non_goals",
)


class ExpandedProposal(_Draft):
    """A rough idea expanded into a structured proposal; every section is shown to reviewers."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    summary: Text
    problem_statement: Text
    proposed_solution: Text
    assumptions: list[Item] = Field(max_length=20)
    scope_non_goals: list[Item] = Field(max_length=20)


class Concern(_Draft):
    text: Item
    is_blocking: bool


class BlockingIssue(_Draft):
    text: Item
    security_critical: bool


class ReviewDraft(_Draft):
    """What a reviewer LLM returns for one persona."""

    confidence_score: Score
    summary: Text
    strengths: list[Item] = Field(max_length=10)
    concerns: list[Concern] = Field(max_length=10)
    recommendations: list[Item] = Field(max_length=10)
    blocking_issues: list[BlockingIssue] = Field(max_length=10)
    estimated_effort: Item
    dependency_risks: list[Item] = Field(max_length=10)


class PersonaReview(ReviewDraft):
    """A review attributed to a persona by us, never by the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    persona_id: str
    persona_name: str

    @classmethod
    def from_draft(cls, draft: ReviewDraft, *, persona_id: str, persona_name: str) -> PersonaReview:
        return cls(**draft.model_dump(), persona_id=persona_id, persona_name=persona_name)

    @property
    def blocking_texts(self) -> list[str]:
        """Every blocking point: the blocking issues, then the concerns marked blocking."""
        return [i.text for i in self.blocking_issues] + [
            c.text for c in self.concerns if c.is_blocking
        ]

    @property
    def has_blocking_issues(self) -> bool:
        return bool(self.blocking_texts)

    @property
    def has_security_critical_issue(self) -> bool:
        return any(issue.security_critical for issue in self.blocking_issues)


class DecisionLabel(StrEnum):
    APPROVE = "approve"
    REVISE = "revise"
    REJECT = "reject"


class ScoreBreakdown(_Strict):
    """Everything needed to recompute the overall score by hand."""

    weights: dict[str, float]
    individual_scores: dict[str, float]
    weighted_contributions: dict[str, float]
    weight_total: float
    formula: str


class MinorityReport(_Strict):
    persona_id: str
    persona_name: str
    confidence_score: Score
    position: str
    blocking_summary: str
    mitigation_recommendation: str


class Decision(_Strict):
    """The deterministic outcome of a run."""

    schema_version: str = SCHEMA_VERSION
    decision: DecisionLabel
    overall_weighted_confidence: Score
    score_decision: DecisionLabel
    rules_applied: list[str]
    score_breakdown: ScoreBreakdown
    minority_reports: list[MinorityReport]
    reviewed_personas: list[str]
    missing_personas: list[str]
    approve_threshold: Score
    revise_threshold: Score
    rationale: str


class SplitPoint(_Draft):
    """One question the panel divided over."""

    topic: Item
    positions: Item
    """Who held what, by persona name, and why."""


class ChairReport(_Draft):
    """The chair's synthesis of a panel's reviews: model-written, never the decision."""

    summary: Text
    agreed: list[Item] = Field(max_length=10)
    split: list[SplitPoint] = Field(max_length=10)
    would_change_outcome: list[Item] = Field(max_length=10)
    """What evidence or change to the proposal would move the decision."""
