"""Claiming a run's steps, so each step takes effect once under at-least-once delivery.

Pub/Sub may deliver a message twice, late, or to two workers at once. Every stage
therefore starts by claiming its ``step_progress`` row and ends by settling it, and
both happen with the run's row locked (``SELECT … FOR UPDATE``): the transactions of
one run are serialised, so two holders can never both see a step as theirs. While the
work runs, its holder's heartbeat touches the claim (:func:`touch`); a claim silent for
``stale_after`` seconds was abandoned (its worker died) and may be taken over.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consensus_engine.db.models import Run, StepProgress
from consensus_engine.db.types import utcnow
from consensus_engine.domain.runs import IN_FLIGHT, RunStatus, StepStatus


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    DONE = "done"  # the step already ended: a duplicate or late delivery
    HELD = "held"  # another live worker holds the step
    RUN_ENDED = "run_ended"  # completed, failed or cancelled: no more work
    MISSING = "missing"  # no such run or step


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    run: Run | None = None
    step: StepProgress | None = None
    job_started: bool = False
    """This claim moved the run from queued to running."""
    held_for: float = 0.0
    """For ``HELD``: seconds until the holder's claim goes stale."""

    @property
    def claimed(self) -> bool:
        return self.outcome is ClaimOutcome.CLAIMED


class Holding(NamedTuple):
    """A step's claim as its holder knows it."""

    run_id: uuid.UUID
    step_name: str
    holder: str


def touch(session: Session, holdings: Sequence[Holding], *, now: datetime | None = None) -> None:
    """The heartbeat: mark the claims still held as alive.

    Rows a stage's transaction has locked are skipped (it is settling them), so a beat
    never waits and never deadlocks with the work it vouches for.
    """
    held = sa.or_(
        *(
            sa.and_(
                StepProgress.run_id == h.run_id,
                StepProgress.step_name == h.step_name,
                StepProgress.claimed_by == h.holder,
            )
            for h in holdings
        )
    )
    unlocked = (
        sa.select(StepProgress.id)
        .where(StepProgress.status == StepStatus.RUNNING, held)
        .with_for_update(skip_locked=True)
    )
    session.execute(
        sa.update(StepProgress)
        .where(StepProgress.id.in_(unlocked))
        .values(updated_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


def lock_run(session: Session, run_id: uuid.UUID) -> Run | None:
    """The run, locked until the transaction ends (a no-op lock on SQLite, which
    serialises writers anyway)."""
    return session.scalar(
        sa.select(Run)
        .where(Run.id == run_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def lock_run_and_step(
    session: Session, run_id: uuid.UUID, step_name: str
) -> tuple[Run | None, StepProgress | None]:
    """The run, locked, then one of its steps.

    Two statements on purpose: under READ COMMITTED a joined ``FOR UPDATE`` that waited
    for the lock would return the step as it was before the holder committed.
    """
    run = lock_run(session, run_id)
    if run is None:
        return None, None
    return run, get_step(session, run_id, step_name)


def step_statuses(session: Session, run_id: uuid.UUID) -> dict[str, StepStatus]:
    """Each step's status, as this transaction sees it (its own changes flushed first)."""
    session.flush()
    rows = session.execute(
        sa.select(StepProgress.step_name, StepProgress.status).where(StepProgress.run_id == run_id)
    )
    return {row.step_name: row.status for row in rows}


def get_step(session: Session, run_id: uuid.UUID, step_name: str) -> StepProgress | None:
    return session.scalar(
        sa.select(StepProgress).where(
            StepProgress.run_id == run_id, StepProgress.step_name == step_name
        )
    )


def claim_step(
    session: Session,
    run_id: uuid.UUID,
    step_name: str,
    *,
    holder: str,
    stale_after: float,
    now: datetime | None = None,
) -> Claim:
    """Take the step for ``holder`` if it is pending or its holder went silent."""
    now = now or utcnow()
    run, step = lock_run_and_step(session, run_id, step_name)
    if run is None:
        return Claim(ClaimOutcome.MISSING)
    if run.status.is_terminal:
        return Claim(ClaimOutcome.RUN_ENDED, run=run)
    if step is None:
        return Claim(ClaimOutcome.MISSING, run=run)
    if step.status.is_terminal:
        return Claim(ClaimOutcome.DONE, run=run, step=step)
    if step.status is StepStatus.RUNNING:
        idle = (now - step.updated_at).total_seconds()
        if idle < stale_after:
            return Claim(ClaimOutcome.HELD, run=run, step=step, held_for=stale_after - idle)
    step.status = StepStatus.RUNNING
    step.claimed_by = holder
    step.attempts += 1
    step.started_at = step.started_at or now
    step.updated_at = now
    job_started = run.status is RunStatus.QUEUED
    if job_started:
        run.status = RunStatus.RUNNING
        run.started_at = now
    run.updated_at = now
    session.flush()
    return Claim(ClaimOutcome.CLAIMED, run=run, step=step, job_started=job_started)


def reclaim(
    session: Session, run_id: uuid.UUID, step_name: str, *, holder: str
) -> tuple[Run, StepProgress] | None:
    """Lock the run again after the work and check the claim is still ours.

    ``None`` means another worker took the step over (ours looked dead) or the run
    ended meanwhile: the caller must drop its result.
    """
    run, step = lock_run_and_step(session, run_id, step_name)
    if run is None or run.status.is_terminal:
        return None
    if step is None or step.status is not StepStatus.RUNNING or step.claimed_by != holder:
        return None
    run.updated_at = utcnow()
    return run, step


def settle_step(
    step: StepProgress,
    status: StepStatus,
    *,
    error: str | None = None,
    metadata: dict[str, object] | None = None,
    now: datetime | None = None,
) -> None:
    """Move a claimed step to ``status``; pending hands it back for a retry."""
    now = now or utcnow()
    step.status = status
    step.updated_at = now
    step.error = error
    if metadata:
        step.step_metadata = {**step.step_metadata, **metadata}
    if status is StepStatus.PENDING:
        step.claimed_by = None
    elif status.is_terminal:
        step.completed_at = now


def hand_back(step: StepProgress, *, error: str, spent: bool) -> None:
    """Hand a claimed step back for a retry. A retry that spent nothing (the database was
    away, the LLM had no room) does not count as a claim either: waiting never wears a
    step out (see the sweeper's ``max_claims``)."""
    settle_step(step, StepStatus.PENDING, error=error)
    if not spent:
        step.attempts -= 1


def end_run(
    run: Run,
    status: RunStatus,
    *,
    error_code: str | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> None:
    """Finish the run; its unfinished steps are marked skipped so nothing looks in flight."""
    now = now or utcnow()
    run.status = status
    run.completed_at = now
    run.updated_at = now
    run.error_code = error_code
    run.error = error
    for step in run.steps:
        if not step.status.is_terminal:
            step.status = StepStatus.SKIPPED
            step.updated_at = now
            step.completed_at = now
            step.claimed_by = None


def reopen(run: Run, *, deadline_at: datetime, now: datetime) -> None:
    """Queue a failed run again: its failed and skipped steps become pending, the rest are
    kept. Its enqueue counts as unconfirmed until the caller's publish is."""
    for step in run.steps:
        if step.status in (StepStatus.FAILED, StepStatus.SKIPPED):
            step.status = StepStatus.PENDING
            step.claimed_by = None
            step.error = None
            step.completed_at = None
            step.updated_at = now
    run.status = RunStatus.QUEUED
    run.error_code = run.error = None
    run.completed_at = None
    run.attempts = 0
    run.queued_at = now
    run.last_enqueued_at = None
    run.updated_at = now
    run.deadline_at = deadline_at


def time_out(run: Run, *, now: datetime | None = None) -> None:
    """Fail a run that passed ``deadline_at`` (``WORKER_JOB_TIMEOUT_SECONDS``)."""
    end_run(
        run, RunStatus.FAILED, error_code="timeout", error="the run passed its time limit", now=now
    )


def lock_overdue_runs(session: Session, now: datetime, *, limit: int) -> Sequence[Run]:
    """Runs under way past their deadline, locked; rows another sweeper holds are skipped."""
    return _lock_in_flight(session, Run.deadline_at < now, limit)


def lock_stuck_runs(
    session: Session,
    *,
    never_sent_before: datetime,
    sent_before: datetime,
    silent_since: datetime,
    limit: int,
) -> Sequence[Run]:
    """Runs that may need their messages sent again, locked (skipping those held):
    queued ones whose enqueue was never confirmed, or confirmed long ago without the run
    starting, and running ones untouched for a while."""
    never_sent = sa.and_(Run.last_enqueued_at.is_(None), Run.created_at < never_sent_before)
    unstarted = sa.and_(
        Run.status == RunStatus.QUEUED, sa.or_(never_sent, Run.last_enqueued_at < sent_before)
    )
    stalled = sa.and_(Run.status == RunStatus.RUNNING, Run.updated_at < silent_since)
    return _lock_in_flight(session, sa.or_(unstarted, stalled), limit)


def _lock_in_flight(
    session: Session, condition: sa.ColumnElement[bool], limit: int
) -> Sequence[Run]:
    return session.scalars(
        sa.select(Run)
        .where(Run.status.in_(IN_FLIGHT), condition)
        .order_by(Run.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
