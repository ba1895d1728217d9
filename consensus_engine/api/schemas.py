"""Request and response models shared by the routes, so the OpenAPI schema is complete.

The documents a run produces (the proposal, a persona's review, the decision) are the
domain's own pydantic models, re-exported here, so the API shows exactly what is stored.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from consensus_engine.db.documents import IDEA_PREVIEW_CHARS
from consensus_engine.domain.personas import PERSONA_ID_PATTERN
from consensus_engine.domain.revisions import ProposalSource
from consensus_engine.domain.runs import Priority, RunStatus, RunType, StepStatus
from consensus_engine.domain.schemas import (
    ChairReport,
    Decision,
    DecisionLabel,
    ExpandedProposal,
    PersonaReview,
)

__all__ = [
    "Decision",
    "ErrorEnvelope",
    "ExpandedProposal",
    "PersonaReview",
]


class ErrorEnvelope(BaseModel):
    """The body of every error response (see ``api/errors.py``)."""

    code: str = Field(description="stable machine-readable error code, e.g. VALIDATION_ERROR")
    message: str = Field(description="a message written for the client")
    details: Any = Field(default=None, description="structured details, when there are any")
    request_id: str = Field(description="equals the X-Request-ID response header")


# -- requests ---------------------------------------------------------------------------------

ModelName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
    ),
]
"""Model names as providers spell them: ``gpt-4.1-mini``, ``org/model``, ``name:tag``."""
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
PersonaId = Annotated[str, StringConstraints(pattern=PERSONA_ID_PATTERN.pattern)]
PersonaSelection = Annotated[
    list[PersonaId] | None,
    Field(
        max_length=50,
        description="ids of the configured personas to ask (all by default); their weights "
        "are rescaled to sum to 1",
    ),
]
"""The personas a request asks for; every route that takes them reads them alike."""


class _Request(BaseModel):
    """Unknown fields are refused: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ModelOverrides(_Request):
    expand_model: ModelName | None = Field(
        default=None, description="model that writes the proposal (default: EXPAND_MODEL)"
    )
    review_model: ModelName | None = Field(
        default=None, description="model the personas review with (default: REVIEW_MODEL)"
    )
    expand_temperature: Temperature | None = Field(
        default=None, description="default: EXPAND_TEMPERATURE"
    )
    review_temperature: Temperature | None = Field(
        default=None, description="default: REVIEW_TEMPERATURE"
    )

    def named_models(self) -> list[tuple[list[str], str | None]]:
        """Each model field of the request by its location in the body, set or not."""
        return [(["expand_model"], self.expand_model), (["review_model"], self.review_model)]


class SubmitRunRequest(ModelOverrides):
    """``persona_models``, ``review_rounds`` and ``chair`` shape the panel; see the README's
    section on the council."""

    idea: str = Field(description="the rough idea (MAX_IDEA_LENGTH characters at most)")
    extra_context: str | dict[str, Any] | None = Field(
        default=None,
        description="background as text or a JSON object (MAX_EXTRA_CONTEXT_LENGTH at most)",
    )
    priority: Priority = Field(
        default=Priority.NORMAL, description="high goes to the high-priority queue"
    )
    personas: PersonaSelection = None
    persona_models: dict[PersonaId, ModelName] | None = Field(
        default=None,
        max_length=50,
        description="persona id -> the model that writes its review (catalogued models "
        "only); the others keep their own model, else review_model",
    )
    review_rounds: int | None = Field(
        default=None,
        ge=1,
        le=2,
        description="2: after the first reviews each persona reads the others' (anonymised) "
        "and writes its final review; default: REVIEW_ROUNDS",
    )
    chair: bool | None = Field(
        default=None,
        description="a chair model writes a synthesis under the decision; default: on when "
        "CHAIR_MODEL is set",
    )
    chair_model: ModelName | None = Field(
        default=None, description="the chair's model (turns the chair on); default: CHAIR_MODEL"
    )

    def named_models(self) -> list[tuple[list[str], str | None]]:
        personas = [(["persona_models", pid], m) for pid, m in (self.persona_models or {}).items()]
        return [*super().named_models(), (["chair_model"], self.chair_model), *personas]


class RevisionRequest(ModelOverrides):
    """At least one of ``edited_proposal``, ``edit_notes`` or a non-empty ``rerun_personas``.

    Models and temperatures not given are the parent's; so is the priority.
    """

    edited_proposal: str | dict[str, Any] | None = Field(
        default=None,
        description="sections to replace (an object keyed by section name), or text that "
        "replaces proposed_solution (MAX_EDITED_PROPOSAL_LENGTH at most)",
    )
    edit_notes: str | None = Field(
        default=None,
        description="instructions the expand model applies to the proposal "
        "(MAX_EDIT_NOTES_LENGTH at most)",
    )
    rerun_personas: list[PersonaId] | None = Field(
        default=None,
        max_length=50,
        description="exactly these personas review again, the others reuse the parent's "
        "review; omitted: chosen from what changed",
    )
    priority: Priority | None = Field(default=None, description="default: the parent's")


# -- submitting -------------------------------------------------------------------------------


class RunLinks(BaseModel):
    self: str = Field(description="GET: the run's details")
    events: str = Field(description="GET: Server-Sent Events of its progress")


class RunAccepted(BaseModel):
    """A stored run. ``enqueued`` is true once Pub/Sub confirmed its first message; when false
    the run is safely stored and the sweeper sends the message later."""

    run_id: uuid.UUID
    status: RunStatus
    run_type: RunType
    priority: Priority
    created_at: datetime
    enqueued: bool
    message: str
    links: RunLinks


PlanBasis = Literal["rerun_personas", "direct_edits", "direct_edits_then_notes"]


class RevisionPlan(BaseModel):
    """Which personas the revision re-runs and which reuse the parent's review.

    ``exact`` is true when ``rerun_personas`` was given, or when there are no edit notes:
    then the worker computes exactly this plan. With edit notes the model rewrites the
    proposal at expand time, so the sections it changes are not known yet: ``rerun`` is
    then a lower bound (these re-run whatever the notes change), and a persona listed in
    ``reused`` re-runs too if the notes change a section it reviews. The final plan is in
    the run's details (``revision.plan``) once its expand step completed.
    """

    exact: bool
    basis: PlanBasis
    rerun: list[str]
    reused: list[str]
    reasons: dict[str, list[str]]
    note: str


class RevisionAccepted(RunAccepted):
    parent_run_id: uuid.UUID
    plan: RevisionPlan


class RetryAccepted(RunAccepted):
    steps: list[str] = Field(description="the steps that run again (those that did not complete)")


class RunStatusResponse(BaseModel):
    run_id: uuid.UUID
    status: RunStatus
    completed_at: datetime | None
    error_code: str | None


# -- listing ----------------------------------------------------------------------------------


class RunListItem(BaseModel):
    run_id: uuid.UUID
    status: RunStatus
    run_type: RunType
    priority: Priority
    parent_run_id: uuid.UUID | None
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    decision: DecisionLabel | None
    overall_score: float | None
    proposal_title: str | None
    proposal_summary: str | None
    idea_preview: str = Field(description=f"the idea's first {IDEA_PREVIEW_CHARS} characters")


class RunList(BaseModel):
    runs: list[RunListItem]
    limit: int
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null on the last page"
    )


# -- details ----------------------------------------------------------------------------------


class RunModels(BaseModel):
    expand_model: str
    expand_temperature: float | None
    review_model: str = Field(description="the model of every persona that names none")
    review_temperature: float | None
    review_rounds: int = Field(description="2: the personas read each other's reviews once")
    chair_model: str | None = Field(description="the chair's model; none: no chair")
    chair_fallback_model: str | None = Field(description="the chair's model when its own fails")


class PersonaOut(BaseModel):
    """A persona as tenants see it: never its instructions, the review's system prompt."""

    id: str
    name: str
    weight: float
    focus: str
    model: str | None = Field(
        default=None, description="the model that writes its review; none: the review model"
    )


class ProposalOut(BaseModel):
    source: ProposalSource
    proposal: ExpandedProposal
    diff: dict[str, Any] | None = Field(
        description="for a revision: the sections that differ from the parent's proposal"
    )
    edit_notes: str | None
    created_at: datetime


class ReviewOut(PersonaReview):
    """A persona's full review plus what we stored about it."""

    weight: float
    blocking_issues_present: bool
    security_concerns_present: bool
    reused: bool = Field(description="copied from an earlier run instead of written afresh")
    source_run_id: uuid.UUID | None = Field(description="the run whose LLM call wrote it")
    model: str
    provider: str = Field(description="the LLM provider that served the model")
    temperature: float | None
    prompt_set_version: str
    first_round_review: PersonaReview | None = Field(
        description="with two rounds: the persona's first review, before it read the "
        "others'; this review replaced it, and the decision uses this one"
    )
    created_at: datetime


class ChairOut(BaseModel):
    """The chair's synthesis: written by a model, shown apart, never the decision."""

    status: StepStatus = Field(description="the chair step's status")
    model: str = Field(description="the model that wrote it (or is asked to)")
    provider: str | None
    fallback: bool = Field(description="the fallback model wrote it, the chair's own failed")
    model_written: bool = Field(description="always true: this text is an LLM's, not a rule's")
    report: ChairReport | None
    error: str | None = Field(description="why the chair failed; retry the run to try again")


class StepOut(BaseModel):
    step_name: str
    step_order: int
    persona_id: str | None = Field(description="for a review step, whose review it is")
    status: StepStatus
    attempts: int
    reused: bool = Field(description="the review was reused from the parent run")
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    error: str | None
    metadata: dict[str, Any]


class StepUsageOut(BaseModel):
    step: str
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class RunUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float = Field(description="estimated from the configured price table")
    llm_calls: int = Field(description="LLM requests made, failed attempts included")
    by_step: list[StepUsageOut]


class RunErrorOut(BaseModel):
    code: str | None
    message: str | None


class RevisionOut(BaseModel):
    parent_run_id: uuid.UUID | None = Field(description="null once the parent was deleted")
    edited_proposal: Any = Field(description="the direct edits as submitted")
    edit_notes: str | None
    rerun_personas: list[str] | None = Field(description="as requested; null: chosen by changes")
    plan: dict[str, Any] | None = Field(
        description="the plan the worker applied {rerun, reused, reasons}; null until the "
        "expand step completed"
    )


class RunDetail(BaseModel):
    run_id: uuid.UUID
    status: RunStatus
    run_type: RunType
    priority: Priority
    parent_run_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    deadline_at: datetime | None
    idea: str
    extra_context: str | dict[str, Any] | None
    models: RunModels
    personas: list[PersonaOut]
    schema_version: str
    prompt_set_version: str
    proposal: ProposalOut | None
    reviews: list[ReviewOut] = Field(description="every review stored, in persona-set order")
    decision: Decision | None
    steps: list[StepOut]
    usage: RunUsage
    error: RunErrorOut | None = Field(description="why the run failed or was cancelled")
    revision: RevisionOut | None = Field(description="for a revision run")
    chair: ChairOut | None = Field(description="for a run with a chair")
    links: RunLinks


# -- comparing --------------------------------------------------------------------------------


class DiffMetadata(BaseModel):
    run1_id: str
    run2_id: str
    run1_created_at: str | None
    run2_created_at: str | None
    run1_parent_run_id: str | None
    run2_parent_run_id: str | None
    is_parent_child: bool
    relationship: Literal["run1_is_parent_of_run2", "run2_is_parent_of_run1", "unrelated"]


class SectionChange(BaseModel):
    status: Literal[
        "unchanged", "added", "removed", "modified", "both_missing", "run1_missing", "run2_missing"
    ]
    diff: str = Field(description="unified diff, at most 50 lines")
    diff_truncated: bool
    old_length: int | None
    new_length: int | None


class PersonaDelta(BaseModel):
    persona_id: str
    status: Literal["present_in_both", "added_in_run2", "removed_in_run2"]
    old_confidence: float | None
    new_confidence: float | None
    confidence_delta: float | None
    old_blocking: bool | None
    new_blocking: bool | None
    blocking_changed: bool
    old_security_critical: bool | None
    new_security_critical: bool | None
    security_changed: bool
    concerns_added: list[str]
    concerns_removed: list[str]
    recommendations_added: list[str]
    recommendations_removed: list[str]


class DecisionDelta(BaseModel):
    old_confidence: float | None
    new_confidence: float | None
    confidence_delta: float | None
    old_decision: DecisionLabel | None
    new_decision: DecisionLabel | None
    decision_changed: bool


class RunDiff(BaseModel):
    metadata: DiffMetadata
    proposal_changes: dict[str, SectionChange]
    persona_deltas: list[PersonaDelta]
    decision_delta: DecisionDelta
