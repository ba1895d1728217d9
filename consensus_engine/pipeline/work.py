"""What each stage reads, computes and writes, kept apart from claiming and retrying.

Every stage has the same shape. Its work is *prepared* inside the claim's transaction
(plain values only, so no session is held open), *runs* without the database (the LLM
calls; aggregation's arithmetic), and *stores* its result inside the settling
transaction, saying in a :class:`Stored` what that means for the run.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from consensus_engine.db import reads, writes
from consensus_engine.db.models import Run
from consensus_engine.domain.aggregation import aggregate
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.council import Council, persona_choice
from consensus_engine.domain.personas import Persona, PersonaSet
from consensus_engine.domain.revisions import (
    ProposalSource,
    RerunPlan,
    apply_edits,
    plan_revision,
    proposal_diff,
)
from consensus_engine.domain.runs import (
    RunType,
    Stage,
    StepStatus,
    debate_step,
    parse_step,
    review_step,
)
from consensus_engine.domain.schemas import ChairReport, Decision, ExpandedProposal, PersonaReview
from consensus_engine.llm import CallRecord, LLMClient, LLMError
from consensus_engine.pipeline.budget_gate import CallOverBudget
from consensus_engine.pipeline.inline import (
    chair_synthesis,
    debate_review,
    expand_idea,
    review_proposal,
    revise_proposal,
)

T = TypeVar("T")


class StageInputError(ValueError):
    """The run lacks something the stage needs (a proposal, a parent); retrying cannot help."""


@dataclass(frozen=True)
class Thresholds:
    """What aggregation needs besides the reviews."""

    approve: float
    revise: float
    quorum: int | None
    """Fewest successful reviews needed to aggregate; ``None``: every persona."""


@dataclass(frozen=True)
class Stored:
    """What storing a result means for the run."""

    completes_run: bool = False
    failure: tuple[str, str] | None = None
    """(error code, text): the step fails for good, and the run with it."""


def run_personas(run: Run) -> PersonaSet:
    """The persona set stored with the run: later changes to settings do not affect it."""
    return PersonaSet.from_dict({"personas": run.personas})


def _in_persona_order(personas: PersonaSet, by_persona: Mapping[str, T]) -> list[T]:
    """The values of ``by_persona`` (keyed by persona id) in the run's persona order, so a
    prompt lists the reviews the same way every time."""
    return [by_persona[pid] for pid in personas.ids if pid in by_persona]


def review_choice(run: Run, persona: Persona) -> ModelChoice:
    """The model that writes ``persona``'s reviews in ``run``."""
    return persona_choice(persona, ModelChoice(run.review_model, run.review_temperature))


@dataclass
class Work(ABC):
    """One stage's work: the LLM calls it made and what its step should record."""

    calls: list[CallRecord] = field(default_factory=list, init=False)
    metadata: dict[str, Any] = field(default_factory=dict, init=False)
    tenant: str | None = field(default=None, kw_only=True)
    """Whom the LLM calls are made for (the run's tenant)."""

    @abstractmethod
    def run(self, llm: LLMClient) -> None: ...

    @abstractmethod
    def store(self, session: Session, run: Run) -> Stored: ...


Prepare = Callable[[Session, Run, str | None, Thresholds], Work]


@dataclass
class _Parent:
    run_id: uuid.UUID
    proposal: ExpandedProposal
    reviews: dict[str, PersonaReview]
    sources: dict[str, uuid.UUID]
    """Persona id -> the run whose LLM call wrote that review (reuse keeps the original)."""
    models: dict[str, tuple[str, str, float | None]]
    """Persona id -> the model, provider and temperature that wrote that review."""


def _load_parent(session: Session, parent_id: uuid.UUID | None) -> _Parent:
    if parent_id is None:
        raise StageInputError("the revision's parent run no longer exists")
    proposal = reads.load_proposal(session, parent_id)
    if proposal is None:
        raise StageInputError("the parent run has no proposal to revise")
    rows = reads.load_reviews(session, parent_id)
    return _Parent(
        run_id=parent_id,
        proposal=proposal,
        reviews={pid: PersonaReview.model_validate(row.review) for pid, row in rows.items()},
        sources={pid: row.source_run_id or parent_id for pid, row in rows.items()},
        models={pid: (row.model, row.provider, row.temperature) for pid, row in rows.items()},
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
    def prepare(
        cls, session: Session, run: Run, _persona: str | None, _thresholds: Thresholds
    ) -> ExpandWork:
        forced = run.parameters.get("rerun_personas")
        return cls(
            tenant=run.tenant,
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
                llm, self.idea, self.extra_context, self.choice, tenant=self.tenant
            )
            self.metadata = {"source": self.source.value}
            return
        edited = apply_edits(self.parent.proposal, self.edited_proposal)
        self.proposal, self.source = edited, ProposalSource.EDITED
        if self.edit_notes and self.edit_notes.strip():
            changed_by_hand = proposal_diff(self.parent.proposal, edited)["changed_fields"]
            self.proposal, self.calls = revise_proposal(
                llm,
                edited,
                self.edit_notes,
                self.choice,
                user_edited_sections=changed_by_hand,
                tenant=self.tenant,
            )
            self.source = ProposalSource.REVISED
        self.plan = plan_revision(
            self.parent.proposal,
            self.proposal,
            self.parent.reviews,
            self.personas,
            forced=self.forced_reruns,
        )
        self.metadata = {"source": self.source.value, "plan": self.plan.to_dict()}

    def store(self, session: Session, run: Run) -> Stored:
        """Write the proposal (and reused reviews); the personas that must review now."""
        assert self.proposal is not None
        writes.store_proposal(
            session,
            run.id,
            self.proposal,
            source=self.source,
            edit_notes=self.edit_notes,
            diff=None
            if self.parent is None
            else proposal_diff(self.parent.proposal, self.proposal),
        )
        if self.plan is not None:
            self._reuse(session, run)
        return Stored()

    def _reuse(self, session: Session, run: Run) -> None:
        assert self.plan is not None and self.parent is not None
        steps = {s.step_name: s for s in run.steps}
        for persona_id in self.plan.reused:
            persona = self.personas[persona_id]
            model, provider, temperature = self.parent.models[persona_id]
            writes.upsert_review(
                session,
                run.id,
                self.parent.reviews[persona_id],
                weight=persona.weight,
                model=model,
                provider=provider,
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
            debate = steps.get(debate_step(persona_id))
            if debate is not None:  # a reused review is already a final one
                debate.status = StepStatus.SKIPPED
                debate.completed_at = debate.updated_at = run.updated_at
                debate.step_metadata = {"reused": True}
        for persona_id in self.plan.rerun:
            step = steps[review_step(persona_id)]
            step.step_metadata = {"reasons": list(self.plan.reasons.get(persona_id, ()))}


def _reviewer(
    session: Session, run: Run, personas: PersonaSet, persona_id: str | None
) -> tuple[Persona, ExpandedProposal]:
    """The persona of ``personas`` (the run's) a review step is for, and the proposal it
    reviews."""
    persona = personas.get(persona_id or "")
    if persona is None:
        raise StageInputError(f"persona {persona_id!r} is not part of this run")
    proposal = reads.load_proposal(session, run.id)
    if proposal is None:
        raise StageInputError("the run has no proposal to review")
    return persona, proposal


@dataclass
class ReviewWork(Work):
    """One persona's review of the run's proposal."""

    persona: Persona
    proposal: ExpandedProposal
    choice: ModelChoice
    previous_review: PersonaReview | None = None
    edit_notes: str | None = None
    review: PersonaReview | None = None
    provider: str = ""

    @classmethod
    def prepare(
        cls, session: Session, run: Run, persona_id: str | None, _thresholds: Thresholds
    ) -> ReviewWork:
        persona, proposal = _reviewer(session, run, run_personas(run), persona_id)
        previous = None
        if run.run_type is RunType.REVISION and run.parent_run_id is not None:
            row = reads.load_reviews(session, run.parent_run_id).get(persona.id)
            previous = None if row is None else PersonaReview.model_validate(row.review)
        return cls(
            tenant=run.tenant,
            persona=persona,
            proposal=proposal,
            choice=review_choice(run, persona),
            previous_review=previous,
            edit_notes=run.edit_notes,
        )

    def run(self, llm: LLMClient) -> None:
        self.provider = llm.provider_of(self.choice.model)
        self.review, self.calls = review_proposal(
            llm,
            self.persona,
            self.proposal,
            self.choice,
            previous_review=self.previous_review,
            edit_notes=self.edit_notes,
            tenant=self.tenant,
        )
        self.metadata = {"confidence_score": self.review.confidence_score}

    def store(self, session: Session, run: Run) -> Stored:
        assert self.review is not None
        writes.upsert_review(
            session,
            run.id,
            self.review,
            weight=self.persona.weight,
            model=self.choice.model,
            provider=self.provider,
            temperature=self.choice.temperature,
            prompt_set_version=run.prompt_set_version,
        )
        return Stored()


@dataclass
class DebateWork(Work):
    """The second round: one persona reads the others' first-round reviews and writes its
    final review, which replaces its first (kept beside it).

    The barrier sends this once every first-round review has ended, so the reviews read
    while preparing are the whole first round; a first review is read from
    ``first_round_review`` where a faster persona's final one already replaced it.
    """

    persona: Persona
    proposal: ExpandedProposal
    choice: ModelChoice
    own: PersonaReview
    others: list[PersonaReview]
    review: PersonaReview | None = None
    provider: str = ""

    @classmethod
    def prepare(
        cls, session: Session, run: Run, persona_id: str | None, _thresholds: Thresholds
    ) -> DebateWork:
        personas = run_personas(run)
        persona, proposal = _reviewer(session, run, personas, persona_id)
        rows = reads.load_reviews(session, run.id)
        first = {
            pid: PersonaReview.model_validate(row.first_round_review or row.review)
            for pid, row in rows.items()
        }
        own = first.pop(persona.id, None)
        if own is None:
            raise StageInputError(f"persona {persona.id!r} has no first-round review")
        return cls(
            tenant=run.tenant,
            persona=persona,
            proposal=proposal,
            choice=review_choice(run, persona),
            own=own,
            others=_in_persona_order(personas, first),
        )

    def run(self, llm: LLMClient) -> None:
        self.provider = llm.provider_of(self.choice.model)
        self.review, self.calls = debate_review(
            llm, self.persona, self.proposal, self.own, self.others, self.choice, tenant=self.tenant
        )
        self.metadata = {
            "confidence_score": self.review.confidence_score,
            "first_round_score": self.own.confidence_score,
        }

    def store(self, session: Session, run: Run) -> Stored:
        assert self.review is not None
        writes.store_final_review(
            session,
            run.id,
            self.review,
            model=self.choice.model,
            provider=self.provider,
            temperature=self.choice.temperature,
        )
        return Stored()


@dataclass
class AggregateWork(Work):
    """Decide over the reviews that exist, or refuse when fewer than the quorum do.

    Every review and debate step has ended when this runs (the barrier), so the reviews
    read while preparing are final.
    """

    personas: PersonaSet
    reviews: list[PersonaReview]
    failures: dict[str, str]
    """Persona id -> why it has no review."""
    thresholds: Thresholds
    chaired: bool = False
    """A chair step follows: the run completes when it ends."""
    decision: Decision | None = None
    shortfall: str | None = None

    @classmethod
    def prepare(
        cls, session: Session, run: Run, _persona: str | None, thresholds: Thresholds
    ) -> AggregateWork:
        rows = reads.load_reviews(session, run.id)
        return cls(
            personas=run_personas(run),
            reviews=[PersonaReview.model_validate(row.review) for row in rows.values()],
            failures={
                persona_id: step.error or step.status.value
                for step in run.steps
                if (parsed := parse_step(step.step_name))[0] is Stage.REVIEW
                and (persona_id := parsed[1]) is not None
                and persona_id not in rows
            },
            thresholds=thresholds,
            chaired=Council.of(run.parameters).chair is not None,
        )

    def run(self, llm: LLMClient) -> None:
        quorum, personas = self.thresholds.quorum, self.personas
        needed = len(personas) if quorum is None else min(quorum, len(personas))
        if len(self.reviews) < needed:
            missing = "; ".join(f"{pid}: {why}" for pid, why in self.failures.items())
            self.shortfall = (
                f"{len(self.reviews)} of {len(personas)} personas reviewed, {needed} needed "
                f"(REVIEW_QUORUM); missing {missing}"
            )
            return
        self.decision = aggregate(
            self.reviews,
            personas,
            approve_threshold=self.thresholds.approve,
            revise_threshold=self.thresholds.revise,
            expected=personas.ids,
        )
        self.metadata = {
            "decision": self.decision.decision.value,
            "missing": self.decision.missing_personas,
        }

    def store(self, session: Session, run: Run) -> Stored:
        if self.decision is None:
            assert self.shortfall is not None
            return Stored(failure=("quorum_not_met", self.shortfall))
        writes.store_decision(session, run, self.decision)
        return Stored(completes_run=not self.chaired)


@dataclass
class ChairWork(Work):
    """The chair's synthesis of the decided run, from its model or else its fallback.

    The decision is stored already and this never touches it; whatever happens here, the
    run completes (a failed chair step can be retried).
    """

    proposal: ExpandedProposal
    reviews: list[PersonaReview]
    decision: Decision
    choice: ModelChoice
    fallback: str | None
    report: ChairReport | None = None
    used: ModelChoice | None = None
    provider: str = ""

    @classmethod
    def prepare(
        cls, session: Session, run: Run, _persona: str | None, _thresholds: Thresholds
    ) -> ChairWork:
        council = Council.of(run.parameters)
        if council.chair is None:
            raise StageInputError("the run has no chair")
        proposal = reads.load_proposal(session, run.id)
        decision = reads.load_decision(session, run.id)
        if proposal is None or decision is None:
            raise StageInputError("the run has no decision for the chair to explain")
        rows = reads.load_reviews(session, run.id)
        return cls(
            tenant=run.tenant,
            proposal=proposal,
            reviews=[
                PersonaReview.model_validate(row.review)
                for row in _in_persona_order(run_personas(run), rows)
            ],
            decision=decision,
            choice=council.chair,
            fallback=council.chair_fallback,
        )

    def run(self, llm: LLMClient) -> None:
        try:
            self._write(llm, self.choice)
        except LLMError as error:
            if self.fallback is None or isinstance(error, CallOverBudget):
                raise
            self.calls = list(error.calls)
            self._write(llm, ModelChoice(self.fallback, self.choice.temperature))
        assert self.used is not None
        self.metadata = {"model": self.used.model, "fallback": self.used != self.choice}

    def _write(self, llm: LLMClient, choice: ModelChoice) -> None:
        spent = self.calls
        try:
            self.report, calls = chair_synthesis(
                llm, self.proposal, self.reviews, self.decision, choice, tenant=self.tenant
            )
        except LLMError as error:
            error.calls = [*spent, *error.calls]
            raise
        self.calls = [*spent, *calls]
        self.used, self.provider = choice, llm.provider_of(choice.model)

    def store(self, session: Session, run: Run) -> Stored:
        assert self.report is not None and self.used is not None
        writes.store_chair_report(
            session,
            run.id,
            self.report,
            model=self.used.model,
            provider=self.provider,
            fallback=self.used != self.choice,
        )
        return Stored(completes_run=True)


PREPARE: dict[Stage, Prepare] = {
    Stage.EXPAND: ExpandWork.prepare,
    Stage.REVIEW: ReviewWork.prepare,
    Stage.DEBATE: DebateWork.prepare,
    Stage.AGGREGATE: AggregateWork.prepare,
    Stage.CHAIR: ChairWork.prepare,
}
"""How each stage prepares its work."""
