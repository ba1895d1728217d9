"""What each stage reads, computes and writes, kept apart from claiming and retrying.

A unit of work is prepared inside the claim's transaction (plain values only, so no
session is held open), runs without the database (the LLM calls), and stores its
result inside the settling transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consensus_engine.db import repository
from consensus_engine.db.models import DecisionRecord, ProposalSource, ProposalVersion, Run
from consensus_engine.domain.aggregation import aggregate
from consensus_engine.domain.personas import Persona, PersonaSet
from consensus_engine.domain.revisions import (
    RerunPlan,
    apply_edits,
    proposal_diff,
    select_personas_to_rerun,
)
from consensus_engine.domain.runs import RunType, StepStatus, persona_of_step, review_step
from consensus_engine.domain.schemas import ExpandedProposal, PersonaReview
from consensus_engine.llm import CallRecord, LLMClient
from consensus_engine.pipeline.inline import (
    ModelChoice,
    expand_idea,
    review_proposal,
    revise_proposal,
)


class StageInputError(ValueError):
    """The run lacks something the stage needs (a proposal, a parent); retrying cannot help."""


def run_personas(run: Run) -> PersonaSet:
    """The persona set stored with the run: later changes to settings do not affect it."""
    return PersonaSet.from_dict({"personas": run.personas})


@dataclass
class Work:
    """Base of a stage's work: the LLM calls it made and what its step should record."""

    calls: list[CallRecord] = field(default_factory=list, init=False)
    metadata: dict[str, Any] = field(default_factory=dict, init=False)

    def run(self, llm: LLMClient) -> None:
        raise NotImplementedError


@dataclass
class _Parent:
    run_id: uuid.UUID
    proposal: ExpandedProposal
    reviews: dict[str, PersonaReview]
    sources: dict[str, uuid.UUID]
    """Persona id -> the run whose LLM call wrote that review (reuse keeps the original)."""
    models: dict[str, tuple[str, float | None]]
    """Persona id -> the model and temperature that wrote that review."""


def _load_parent(session: Session, parent_id: uuid.UUID | None) -> _Parent:
    if parent_id is None:
        raise StageInputError("the revision's parent run no longer exists")
    proposal = repository.load_proposal(session, parent_id)
    if proposal is None:
        raise StageInputError("the parent run has no proposal to revise")
    rows = repository.load_reviews(session, parent_id)
    return _Parent(
        run_id=parent_id,
        proposal=proposal,
        reviews={pid: PersonaReview.model_validate(row.review) for pid, row in rows.items()},
        sources={pid: row.source_run_id or parent_id for pid, row in rows.items()},
        models={pid: (row.model, row.temperature) for pid, row in rows.items()},
    )


@dataclass
class ExpandWork(Work):
    """Expand the idea, or for a revision apply the edits, and plan the reviews."""

    idea: str
    extra_context: Any
    choice: ModelChoice
    personas: PersonaSet
    parent: _Parent | None = None
    edited_proposal: Any = None
    edit_notes: str | None = None
    forced_reruns: tuple[str, ...] | None = None
    proposal: ExpandedProposal | None = None
    source: ProposalSource = ProposalSource.EXPANDED
    plan: RerunPlan | None = None

    @classmethod
    def prepare(cls, session: Session, run: Run) -> ExpandWork:
        forced = run.parameters.get("rerun_personas")
        return cls(
            idea=run.idea,
            extra_context=run.extra_context,
            choice=ModelChoice(run.expand_model, run.expand_temperature),
            personas=run_personas(run),
            parent=(
                _load_parent(session, run.parent_run_id)
                if run.run_type is RunType.REVISION
                else None
            ),
            edited_proposal=run.edited_proposal,
            edit_notes=run.edit_notes,
            forced_reruns=None if forced is None else tuple(forced),
        )

    def run(self, llm: LLMClient) -> None:
        if self.parent is None:
            self.proposal, self.calls = expand_idea(
                llm, self.idea, self.extra_context, self.choice
            )
            self.metadata = {"source": self.source.value}
            return
        edited = apply_edits(self.parent.proposal, self.edited_proposal)
        self.proposal, self.source = edited, ProposalSource.EDITED
        if self.edit_notes and self.edit_notes.strip():
            changed_by_hand = proposal_diff(self.parent.proposal, edited)["changed_fields"]
            self.proposal, self.calls = revise_proposal(
                llm, edited, self.edit_notes, self.choice, user_edited_sections=changed_by_hand
            )
            self.source = ProposalSource.REVISED
        changed = proposal_diff(self.parent.proposal, self.proposal)["changed_fields"]
        self.plan = self._plan(changed)
        self.metadata = {"source": self.source.value, "plan": self.plan.to_dict()}

    def _plan(self, changed_sections: dict[str, Any]) -> RerunPlan:
        assert self.parent is not None
        if self.forced_reruns is None:
            return select_personas_to_rerun(self.parent.reviews, self.personas, changed_sections)
        rerun = [p for p in self.personas.ids if p in self.forced_reruns]
        missing = [p for p in self.personas.ids if p not in self.parent.reviews]
        rerun += [p for p in missing if p not in rerun]
        reused = [p for p in self.personas.ids if p not in rerun]
        reasons = {
            p: ("no review in the parent run",) if p in missing else ("chosen to re-run",)
            for p in rerun
        }
        kept = ("not chosen to re-run: the parent's review is reused",)
        reasons.update(dict.fromkeys(reused, kept))
        return RerunPlan(rerun=tuple(rerun), reused=tuple(reused), reasons=reasons)

    def store(self, session: Session, run: Run) -> tuple[str, ...]:
        """Write the proposal (and reused reviews); the personas that must review now."""
        assert self.proposal is not None
        version = session.scalar(
            sa.select(ProposalVersion).where(ProposalVersion.run_id == run.id)
        ) or ProposalVersion(run_id=run.id)
        version.proposal = self.proposal.model_dump(mode="json")
        version.source = self.source
        version.edit_notes = self.edit_notes
        version.diff = None
        if self.parent is not None:
            version.diff = dict(proposal_diff(self.parent.proposal, self.proposal))
        session.add(version)
        if self.plan is None:
            return self.personas.ids
        self._reuse(session, run)
        return self.plan.rerun

    def _reuse(self, session: Session, run: Run) -> None:
        assert self.plan is not None and self.parent is not None
        steps = {s.step_name: s for s in run.steps}
        for persona_id in self.plan.reused:
            persona = self.personas[persona_id]
            model, temperature = self.parent.models[persona_id]
            repository.upsert_review(
                session,
                run.id,
                self.parent.reviews[persona_id],
                weight=persona.weight,
                model=model,
                temperature=temperature,
                prompt_set_version=run.prompt_set_version,
                source_run_id=self.parent.sources[persona_id],
            )
            step = steps[review_step(persona_id)]
            step.status = StepStatus.COMPLETED
            step.completed_at = step.updated_at = run.updated_at
            step.step_metadata = {
                "reused": True,
                "source_run_id": str(self.parent.sources[persona_id]),
                "reasons": list(self.plan.reasons.get(persona_id, ())),
            }
        for persona_id in self.plan.rerun:
            step = steps[review_step(persona_id)]
            step.step_metadata = {"reasons": list(self.plan.reasons.get(persona_id, ()))}


@dataclass
class ReviewWork(Work):
    """One persona's review of the run's proposal."""

    persona: Persona
    proposal: ExpandedProposal
    choice: ModelChoice
    previous_review: PersonaReview | None = None
    edit_notes: str | None = None
    review: PersonaReview | None = None

    @classmethod
    def prepare(cls, session: Session, run: Run, persona_id: str) -> ReviewWork:
        personas = run_personas(run)
        persona = personas.get(persona_id)
        if persona is None:
            raise StageInputError(f"persona {persona_id!r} is not part of this run")
        proposal = repository.load_proposal(session, run.id)
        if proposal is None:
            raise StageInputError("the run has no proposal to review")
        previous = None
        if run.run_type is RunType.REVISION and run.parent_run_id is not None:
            row = repository.load_reviews(session, run.parent_run_id).get(persona_id)
            previous = None if row is None else PersonaReview.model_validate(row.review)
        return cls(
            persona=persona,
            proposal=proposal,
            choice=ModelChoice(run.review_model, run.review_temperature),
            previous_review=previous,
            edit_notes=run.edit_notes,
        )

    def run(self, llm: LLMClient) -> None:
        self.review, self.calls = review_proposal(
            llm,
            self.persona,
            self.proposal,
            self.choice,
            previous_review=self.previous_review,
            edit_notes=self.edit_notes,
        )
        self.metadata = {"confidence_score": self.review.confidence_score}

    def store(self, session: Session, run: Run) -> None:
        assert self.review is not None
        repository.upsert_review(
            session,
            run.id,
            self.review,
            weight=self.persona.weight,
            model=self.choice.model,
            temperature=self.choice.temperature,
            prompt_set_version=run.prompt_set_version,
        )


@dataclass(frozen=True)
class AggregateOutcome:
    error: str | None
    metadata: dict[str, Any]


def aggregate_run(
    session: Session,
    run: Run,
    *,
    approve_threshold: float,
    revise_threshold: float,
    quorum: int | None,
) -> AggregateOutcome:
    """Decide over the reviews that exist, or refuse when fewer than the quorum do."""
    personas = run_personas(run)
    rows = repository.load_reviews(session, run.id)
    reviews = [PersonaReview.model_validate(row.review) for row in rows.values()]
    needed = len(personas) if quorum is None else min(quorum, len(personas))
    failures = {
        persona_id: step.error or step.status.value
        for step in run.steps
        if (persona_id := persona_of_step(step.step_name)) is not None and persona_id not in rows
    }
    if len(reviews) < needed:
        missing = "; ".join(f"{pid}: {why}" for pid, why in failures.items())
        return AggregateOutcome(
            error=(
                f"{len(reviews)} of {len(personas)} personas reviewed, {needed} needed "
                f"(REVIEW_QUORUM); missing {missing}"
            ),
            metadata={"missing": sorted(failures)},
        )
    decision = aggregate(
        reviews,
        personas,
        approve_threshold=approve_threshold,
        revise_threshold=revise_threshold,
        expected=personas.ids,
    )
    record = session.scalar(
        sa.select(DecisionRecord).where(DecisionRecord.run_id == run.id)
    ) or DecisionRecord(run_id=run.id)
    session.add(record)
    record.decision = decision.decision
    record.overall_score = decision.overall_weighted_confidence
    record.decision_json = decision.model_dump(mode="json")
    run.decision = decision.decision
    run.overall_score = decision.overall_weighted_confidence
    return AggregateOutcome(
        error=None,
        metadata={"decision": decision.decision.value, "missing": decision.missing_personas},
    )
