"""The run service: submit, revise, retry and cancel runs.

Each use case makes its own checks and writes in one transaction of its own, which also
records the publish in advance (``last_enqueued_at``); it commits, then publishes the run's
jobs and waits for Pub/Sub's confirmation. So the happy path writes nothing after the
publish. A publish that fails loses nothing: ``last_enqueued_at`` is cleared again and the
sweeper sends the run ``SWEEPER_REQUEUE_AFTER_SECONDS`` after it was created. A process that
dies between the commit and the publish leaves the record in place; the sweeper still
sends such a run, once it stayed queued ``SWEEPER_RESEND_UNSTARTED_AFTER_SECONDS``.
The API, the demo, the benchmarks and the tests all go through here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import claims, deletions, reads, writes
from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.budgets import Budget, Budgets, Standing, first_exhausted, standings
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.council import Council, review_models
from consensus_engine.domain.personas import PersonaSet
from consensus_engine.domain.prompts import PROMPT_SET_VERSION, ExtraContext
from consensus_engine.domain.revisions import (
    EditedProposal,
    RerunPlan,
)
from consensus_engine.domain.runs import (
    CHAIR_STEP,
    Job,
    Priority,
    RunStatus,
    RunType,
    Stage,
    StepStatus,
)
from consensus_engine.domain.schemas import SCHEMA_VERSION
from consensus_engine.observability.logs import lifecycle
from consensus_engine.pipeline.preview import preview_plan
from consensus_engine.pipeline.refusals import (
    BudgetExceeded,
    IdempotencyConflict,
    RunNotFound,
    RunStateConflict,
    TooManyRunsInFlight,
)
from consensus_engine.pipeline.sweeper import resumable_jobs
from consensus_engine.pipeline.work import run_personas

logger = logging.getLogger(__name__)

JobSender = Callable[[Sequence[Job]], None]
"""Publishes jobs and returns once Pub/Sub confirmed them all; raises otherwise."""

_FINGERPRINT = "request_sha256"
"""The run parameter that keeps the fingerprint of the request that created the run."""


@dataclass(frozen=True)
class Idempotency:
    """A client's key for repeating a request safely, and what the request said."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class NewRun:
    idea: str
    personas: PersonaSet
    expand: ModelChoice
    review: ModelChoice
    extra_context: ExtraContext = None
    priority: Priority = Priority.NORMAL
    council: Council = field(default_factory=Council)


@dataclass(frozen=True)
class NewRevision:
    """Edits to a completed run; what it leaves out is the parent's."""

    edited_proposal: EditedProposal = None
    edit_notes: str | None = None
    rerun_personas: tuple[str, ...] | None = None
    """Exactly these re-run (plus any without a parent review); ``None``: chosen by change."""
    expand_model: str | None = None
    expand_temperature: float | None = None
    review_model: str | None = None
    review_temperature: float | None = None
    priority: Priority | None = None


@dataclass(frozen=True)
class Accepted:
    run: Run
    created: bool
    """``False``: an earlier request with the same Idempotency-Key created ``run``."""
    enqueued: bool
    """Pub/Sub confirmed the run's messages; if not, the sweeper sends them later."""
    plan: RerunPlan | None = None
    """For a revision: which personas re-run (a lower bound while edit notes are pending)."""
    steps: tuple[str, ...] = ()
    """For a retry: the steps that run again."""


class RunService:
    """The use cases on runs, over one database and one publisher."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        send: JobSender,
        *,
        job_timeout_seconds: float,
        max_in_flight: int | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self.sessions = sessions
        self.send = send
        self.job_timeout_seconds = job_timeout_seconds
        self.max_in_flight = max_in_flight
        """Each tenant's cap on queued plus running runs (``None``: no cap)."""
        self.budgets = budgets or Budgets()

    # -- the use cases ---------------------------------------------------------------------------

    def submit(
        self, new: NewRun, *, tenant: str = "default", idempotency: Idempotency | None = None
    ) -> Accepted:
        """Store a queued run with one pending step per stage and persona, then enqueue it."""
        stored_context: Any = (
            dict(new.extra_context) if isinstance(new.extra_context, Mapping) else new.extra_context
        )
        with self.sessions() as session:
            earlier = self._replayed(session, tenant, idempotency)
            if earlier is not None:
                return self._replay(earlier)
            self._check_capacity(session, tenant)
            run, created = self._insert(
                session,
                tenant,
                idempotency,
                lambda: writes.create_run(
                    session,
                    idea=new.idea,
                    extra_context=stored_context,
                    **self._models(new.expand, new.review),
                    personas=[p.to_dict() for p in new.personas],
                    schema_version=SCHEMA_VERSION,
                    prompt_set_version=PROMPT_SET_VERSION,
                    step_names=new.council.steps(new.personas),
                    tenant=tenant,
                    priority=new.priority,
                    idempotency_key=None if idempotency is None else idempotency.key,
                    parameters=_fingerprinted(new.council.to_parameters(), idempotency),
                    deadline_at=self._deadline(),
                    enqueued_at=utcnow(),
                ),
            )
        if not created:
            return self._replay(run)
        return self._accepted(run, [Job(Stage.EXPAND, run.id, run.priority)])

    def revise(
        self,
        parent_id: uuid.UUID,
        revision: NewRevision,
        *,
        tenant: str = "default",
        idempotency: Idempotency | None = None,
    ) -> Accepted:
        """Store a revision of a completed run and enqueue it; ``plan`` says who re-runs."""
        with self.sessions() as session:
            parent = self._owned(session, parent_id, tenant)
            earlier = self._replayed(session, tenant, idempotency)
            if earlier is None:
                _require_revisable(parent)
            plan = preview_plan(session, parent, revision.edited_proposal, revision.rerun_personas)
            if earlier is not None:
                return self._replay(earlier, plan)
            self._check_capacity(session, tenant)
            run, created = self._insert(
                session,
                tenant,
                idempotency,
                lambda: self._create_revision(session, parent, revision, idempotency),
            )
        if not created:
            return self._replay(run, plan)
        return self._accepted(run, [Job(Stage.EXPAND, run.id, run.priority)], plan=plan)

    def preview_revision(
        self, parent_id: uuid.UUID, revision: NewRevision, *, tenant: str = "default"
    ) -> RerunPlan:
        """The plan :meth:`revise` would answer, with the same refusals; stores nothing."""
        with self.sessions() as session:
            parent = self._owned(session, parent_id, tenant)
            _require_revisable(parent)
            return preview_plan(session, parent, revision.edited_proposal, revision.rerun_personas)

    def retry(self, run_id: uuid.UUID, *, tenant: str = "default") -> Accepted:
        """Queue a failed run again, re-running only the steps that did not complete; or a
        completed run whose chair failed, for its chair alone.

        Completed steps (the proposal, the reviews that succeeded, the decision) are kept;
        the run gets a fresh time limit.
        """
        with self.sessions() as session:
            run = self._locked(session, run_id, tenant)
            if not retryable(run):
                raise RunStateConflict(
                    "only a failed run, or a completed one whose chair failed, can be "
                    f"retried; this one is {run.status.value}",
                    status=run.status.value,
                )
            self._check_capacity(session, tenant)
            now = utcnow()
            # A decided run runs its chair again, nothing else: the decision stands.
            only = (CHAIR_STEP,) if run.status is RunStatus.COMPLETED else None
            claims.reopen(run, deadline_at=self._deadline(), now=now, only=only)
            run.last_enqueued_at = now  # recorded in advance, as for a new run
            session.flush()
            jobs = resumable_jobs(run, now=now, stale_after=0.0, unstarted_after=0.0).jobs
            steps = tuple(step.step_name for step in run.steps if not step.status.is_terminal)
            session.commit()
        return self._accepted(run, jobs, steps=steps)

    def cancel(self, run_id: uuid.UUID, *, tenant: str = "default") -> Run:
        """Stop scheduling work for a queued or running run; steps in flight finish and are
        dropped."""
        with self.sessions() as session:
            run = self._locked(session, run_id, tenant)
            if run.status.is_terminal:
                raise RunStateConflict(f"the run is already {run.status.value}")
            claims.end_run(
                run, RunStatus.CANCELLED, error_code="cancelled", error="cancelled by the user"
            )
            session.commit()
        return run

    def delete(self, run_id: uuid.UUID, *, tenant: str = "default") -> None:
        """Delete an ended run and everything of it (``db/deletions.py``): its revisions
        stay, without the link, and its LLM calls stay counted against the budget. A run
        under way, or one a revision under way reads, is refused: cancel it first."""
        with self.sessions() as session:
            run = self._locked(session, run_id, tenant)
            kept = deletions.kept_because(session, run)
            if kept is not None:
                raise RunStateConflict(kept, status=run.status.value)
            status = run.status
            deletions.delete(session, [run.id])
            session.commit()
        lifecycle("run_deleted", run_id=run_id, tenant=tenant, status=status, reason="requested")

    # -- checks ----------------------------------------------------------------------------------

    @staticmethod
    def _owned(session: Session, run_id: uuid.UUID, tenant: str) -> Run:
        run = reads.get_run(session, run_id, tenant=tenant)
        if run is None:
            raise RunNotFound(run_id)
        return run

    @staticmethod
    def _locked(session: Session, run_id: uuid.UUID, tenant: str) -> Run:
        run = claims.lock_run(session, run_id)
        if run is None or run.tenant != tenant:
            raise RunNotFound(run_id)
        return run

    def _check_capacity(self, session: Session, tenant: str) -> None:
        """Checked before the insert, without a lock: two requests racing for the last slot
        may both pass, so the cap can be overshot by the number of concurrent submissions.
        The tenant's budget must have something left, too."""
        check_budget(session, self.budgets, tenant)
        if self.max_in_flight is None:
            return
        in_flight = reads.count_in_flight(session, tenant=tenant)
        if in_flight >= self.max_in_flight:
            raise TooManyRunsInFlight(in_flight, self.max_in_flight)

    # -- writing ---------------------------------------------------------------------------------

    def _deadline(self) -> datetime:
        return utcnow() + timedelta(seconds=self.job_timeout_seconds)

    @staticmethod
    def _models(expand: ModelChoice, review: ModelChoice) -> dict[str, Any]:
        return {
            "expand_model": expand.model,
            "expand_temperature": expand.temperature,
            "review_model": review.model,
            "review_temperature": review.temperature,
        }

    def _create_revision(
        self, session: Session, parent: Run, revision: NewRevision, idempotency: Idempotency | None
    ) -> Run:
        expand = ModelChoice(parent.expand_model, parent.expand_temperature).overridden(
            revision.expand_model, revision.expand_temperature
        )
        review = ModelChoice(parent.review_model, parent.review_temperature).overridden(
            revision.review_model, revision.review_temperature
        )
        edited: Any = revision.edited_proposal
        forced = revision.rerun_personas
        council = Council.of(parent.parameters)
        personas = run_personas(parent)
        if revision.review_model is not None:
            personas = review_models(personas, run_wide=revision.review_model, per_persona=None)
        parameters = council.to_parameters()
        if forced is not None:
            parameters["rerun_personas"] = list(forced)
        return writes.create_run(
            session,
            idea=parent.idea,
            extra_context=parent.extra_context,
            edited_proposal=dict(edited) if isinstance(edited, Mapping) else edited,
            edit_notes=revision.edit_notes,
            **self._models(expand, review),
            personas=[p.to_dict() for p in personas],
            schema_version=SCHEMA_VERSION,
            prompt_set_version=PROMPT_SET_VERSION,
            step_names=council.steps(personas),
            tenant=parent.tenant,
            run_type=RunType.REVISION,
            priority=revision.priority or parent.priority,
            parent_run_id=parent.id,
            idempotency_key=None if idempotency is None else idempotency.key,
            parameters=_fingerprinted(parameters, idempotency),
            deadline_at=self._deadline(),
            enqueued_at=utcnow(),
        )

    # -- idempotency -----------------------------------------------------------------------------

    @staticmethod
    def _replayed(session: Session, tenant: str, idempotency: Idempotency | None) -> Run | None:
        """The run an earlier request with this key created, or ``None``; refused when that
        request said something else."""
        if idempotency is None:
            return None
        run = reads.find_by_idempotency_key(session, tenant=tenant, key=idempotency.key)
        if run is None:
            return None
        if run.parameters.get(_FINGERPRINT) != idempotency.fingerprint:
            raise IdempotencyConflict(run.id)
        return run

    def _insert(
        self,
        session: Session,
        tenant: str,
        idempotency: Idempotency | None,
        create: Callable[[], Run],
    ) -> tuple[Run, bool]:
        """Create the run and commit, or find the one a concurrent request with the same key
        created (``create`` writes in a savepoint, so the lost race leaves the transaction
        usable for the look-up). Returns (run, created)."""
        try:
            run = create()
        except IntegrityError:
            existing = self._replayed(session, tenant, idempotency)
            if existing is None:
                raise
            return existing, False
        session.commit()
        return run, True

    @staticmethod
    def _replay(run: Run, plan: RerunPlan | None = None) -> Accepted:
        return Accepted(run, created=False, enqueued=run.last_enqueued_at is not None, plan=plan)

    # -- publishing ------------------------------------------------------------------------------

    def _accepted(
        self,
        run: Run,
        jobs: Sequence[Job],
        *,
        plan: RerunPlan | None = None,
        steps: tuple[str, ...] = (),
    ) -> Accepted:
        return Accepted(run, True, self._publish(run, jobs), plan=plan, steps=steps)

    def _publish(self, run: Run, jobs: Sequence[Job]) -> bool:
        """Send the committed run's jobs (their publish recorded in advance); ``False`` if
        the send failed, and then the record is cleared so that the sweeper sends them."""
        try:
            self.send(jobs)
        except Exception:
            logger.exception("publishing run %s failed; the sweeper will enqueue it", run.id)
            self._unmark(run)
            return False
        return True

    def _unmark(self, run: Run) -> None:
        """Clear the publish recorded in advance, so the sweeper's never-sent rule applies."""
        stamp = run.last_enqueued_at
        if stamp is None:
            return
        try:
            with self.sessions.begin() as session:
                writes.unmark_enqueued(session, run.id, stamp)
        except SQLAlchemyError:
            # Still recorded as sent: the sweeper sends it once it stayed queued too long.
            logger.exception("run %s was not enqueued and recording that failed", run.id)
            return
        run.last_enqueued_at = None


def _fingerprinted(parameters: dict[str, Any], idempotency: Idempotency | None) -> dict[str, Any]:
    """A new run's parameters, with the fingerprint of the request that created it."""
    if idempotency is None:
        return parameters
    return {**parameters, _FINGERPRINT: idempotency.fingerprint}


def check_budget(
    session: Session, budgets: Budgets, tenant: str, *, at: datetime | None = None
) -> None:
    """Raise :class:`BudgetExceeded` when one of the tenant's limits is used up."""
    budget = budgets.for_tenant(tenant)
    if budget == Budget():
        return  # no limits: nothing to read
    exhausted = first_exhausted(budget, reads.spend(session, tenant, at or utcnow()))
    if exhausted is not None:
        raise BudgetExceeded(exhausted)


def budget_standings(
    session: Session, budgets: Budgets, tenant: str, *, at: datetime | None = None
) -> list[Standing]:
    """Each limit of the tenant's budget against what it spent so far; none without limits."""
    budget = budgets.for_tenant(tenant)
    if budget == Budget():
        return []
    return standings(budget, reads.spend(session, tenant, at or utcnow()))


def retryable(run: Run) -> bool:
    """A failed run, or a completed one whose chair step failed: what ``retry`` takes."""
    if run.status is RunStatus.FAILED:
        return True
    chair = next((step for step in run.steps if step.step_name == CHAIR_STEP), None)
    return (
        run.status is RunStatus.COMPLETED
        and chair is not None
        and chair.status is StepStatus.FAILED
    )


def _require_revisable(parent: Run) -> None:
    if parent.status is not RunStatus.COMPLETED:
        raise RunStateConflict(
            f"run {parent.id} is {parent.status.value}; only a completed run can be revised",
            status=parent.status.value,
        )
