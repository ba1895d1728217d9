"""The tools' argument types and the summary they answer with.

The SDK turns these annotations into each tool's JSON Schema, so they carry the API's own
limits (id formats, enum values, bounds): an agent sees what is valid before it calls, and
a wrong argument is refused before any request goes out.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from consensus_engine.domain.personas import PERSONA_ID_PATTERN
from consensus_engine.domain.runs import RunStatus
from consensus_engine.domain.schemas import DecisionLabel

RunId = Annotated[
    uuid.UUID, Field(description="a run's id, as submit_and_wait or list_runs give it")
]
PersonaId = Annotated[
    str, Field(pattern=PERSONA_ID_PATTERN.pattern, description="a persona id, e.g. security")
]
WaitSeconds = Annotated[
    int,
    Field(
        ge=1,
        le=3600,
        description="how long to wait for the decision, in seconds; a run still going then is "
        "answered with finished=false, and get_run(run_id) picks it up later",
    ),
]


class EditedSections(BaseModel):
    """Proposal sections to replace word for word; the sections left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=300)
    summary: str | None = Field(default=None, min_length=1)
    problem_statement: str | None = Field(default=None, min_length=1)
    proposed_solution: str | None = Field(default=None, min_length=1)
    assumptions: list[str] | None = Field(default=None, max_length=20)
    scope_non_goals: list[str] | None = Field(default=None, max_length=20)


class ReviewLine(BaseModel):
    """One persona's verdict in brief; get_run has the full review."""

    persona_id: str
    persona_name: str
    confidence_score: float = Field(description="0 to 1: how far this persona backs the proposal")
    summary: str
    blocking: list[str] = Field(description="the points this persona says must be fixed first")


class RunSummary(BaseModel):
    """A run's outcome as an agent needs it to act: the decision, why, and who objected."""

    run_id: str
    status: RunStatus
    finished: bool = Field(description="false: the wait ran out first; the run goes on")
    decision: DecisionLabel | None = Field(description="none until the run has completed")
    overall_score: float | None = Field(description="the personas' weighted confidence, 0 to 1")
    rationale: str | None = Field(description="why the rules reached this decision")
    proposal_title: str | None
    proposal_summary: str | None
    reviews: list[ReviewLine]
    chair_summary: str | None = Field(description="the chair model's synthesis, when there is one")
    error: str | None = Field(description="why the run failed or was cancelled")
    parent_run_id: str | None = Field(description="for a revision: the run it revises")
    next_step: str = Field(description="what to call next")


class RevisionSummary(RunSummary):
    """A revision's outcome, with the plan that chose which personas review again."""

    rerun_personas: list[str] = Field(description="the personas that review the new proposal")
    reused_personas: list[str] = Field(description="the personas whose earlier review stands")
    plan_note: str
