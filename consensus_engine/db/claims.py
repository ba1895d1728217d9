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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from consensus_engine.db import webhooks
from consensus_engine.db.models import Run, StepProgress, metadata
from consensus_engine.db.types import UTCDateTime, utcnow
from consensus_engine.domain.runs import IN_FLIGHT, RunStatus, StepStatus

_RUNS = metadata.tables[Run.__tablename__]
_STEPS = metadata.tables[StepProgress.__tablename__]
"""Claiming and settling write these with Core statements: no unit of work, no objects."""


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
    attempts: int = 0
    """For ``CLAIMED``: the claims of the step so far, this one included."""
    job_started: bool = False
    """This claim moved the run from queued to running."""
    held_by: str | None = None
    held_for: float = 0.0
    """For ``HELD``: who holds the step, and seconds until its claim goes stale."""

    @property
    def claimed(self) -> bool:
        return self.outcome is ClaimOutcome.CLAIMED


class Held(NamedTuple):
    """A claim found still ours after the work (:func:`reclaim`), ready to settle."""

    run: Run
    step_name: str
    metadata: dict[str, Any]
    """The step's metadata as stored, which settling adds to."""


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


def step_statuses(session: Session, run_id: uuid.UUID) -> dict[str, StepStatus]:
    """Each step's status, as this transaction sees it (its own changes flushed first)."""
    session.flush()
    rows = session.execute(
        sa.select(_STEPS.c.step_name, _STEPS.c.status).where(_STEPS.c.run_id == run_id)
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
    """Take the step for ``holder`` if it is pending or its holder went silent.

    The run is locked first; the step is then claimed by one conditional UPDATE, a new
    statement, so it sees what the run's previous lock holder committed (under READ
    COMMITTED a statement that waited for the lock would not). Only a step that cannot
    be claimed is read, to say why.
    """
    now = now or utcnow()
    run = lock_run(session, run_id)
    if run is None:
        return Claim(ClaimOutcome.MISSING)
    if run.status.is_terminal:
        return Claim(ClaimOutcome.RUN_ENDED, run=run)
    claimable = sa.or_(
        _STEPS.c.status == StepStatus.PENDING,
        sa.and_(
            _STEPS.c.status == StepStatus.RUNNING,
            _STEPS.c.updated_at <= now - timedelta(seconds=stale_after),
        ),
    )
    attempts = session.scalar(
        sa.update(_STEPS)
        .where(_step(run_id, step_name), claimable)
        .values(
            status=StepStatus.RUNNING,
            claimed_by=holder,
            attempts=_STEPS.c.attempts + 1,
            started_at=sa.func.coalesce(_STEPS.c.started_at, sa.literal(now, UTCDateTime())),
            updated_at=now,
        )
        .returning(_STEPS.c.attempts)
    )
    if attempts is None:
        return _unclaimable(session, run, step_name, stale_after=stale_after, now=now)
    job_started = run.status is RunStatus.QUEUED
    changes: dict[str, Any] = {"updated_at": now}
    if job_started:
        changes |= {"status": RunStatus.RUNNING, "started_at": now}
    _update_run(session, run, changes)
    return Claim(ClaimOutcome.CLAIMED, run=run, attempts=attempts, job_started=job_started)


def _unclaimable(
    session: Session, run: Run, step_name: str, *, stale_after: float, now: datetime
) -> Claim:
    """Why the step could not be claimed: missing, ended, or held by a live worker."""
    step = session.execute(
        sa.select(_STEPS.c.status, _STEPS.c.claimed_by, _STEPS.c.updated_at).where(
            _step(run.id, step_name)
        )
    ).first()
    if step is None:
        return Claim(ClaimOutcome.MISSING, run=run)
    if step.status.is_terminal:
        return Claim(ClaimOutcome.DONE, run=run)
    idle = (now - step.updated_at).total_seconds()
    return Claim(
        ClaimOutcome.HELD, run=run, held_by=step.claimed_by, held_for=max(0.0, stale_after - idle)
    )


def reclaim(session: Session, run_id: uuid.UUID, step_name: str, *, holder: str) -> Held | None:
    """Lock the run again after the work and check the claim is still ours.

    ``None`` means another worker took the step over (ours looked dead) or the run
    ended meanwhile: the caller must drop its result. The step is read in a statement
    of its own, after the lock, for the reason :func:`claim_step` gives.
    """
    run = lock_run(session, run_id)
    if run is None or run.status.is_terminal:
        return None
    step = session.execute(
        sa.select(_STEPS.c["metadata"]).where(
            _step(run_id, step_name),
            _STEPS.c.status == StepStatus.RUNNING,
            _STEPS.c.claimed_by == holder,
        )
    ).first()
    if step is None:
        return None
    return Held(run, step_name, step[0] or {})


def skip_steps(session: Session, run_id: uuid.UUID, step_names: Sequence[str]) -> None:
    """Mark pending steps that can never run skipped (one statement)."""
    now = utcnow()
    session.execute(
        sa.update(_STEPS)
        .where(
            _STEPS.c.run_id == run_id,
            _STEPS.c.step_name.in_(step_names),
            _STEPS.c.status == StepStatus.PENDING,
        )
        .values(status=StepStatus.SKIPPED, updated_at=now, completed_at=now)
    )


def settle_step(
    session: Session,
    held: Held,
    status: StepStatus,
    *,
    error: str | None = None,
    metadata: dict[str, object] | None = None,
    now: datetime | None = None,
) -> None:
    """Move a claimed step to ``status``; pending hands it back for a retry."""
    changes = _settled(held, status, error=error, metadata=metadata, now=now or utcnow())
    session.execute(sa.update(_STEPS).where(_step(held.run.id, held.step_name)).values(changes))


def hand_back(session: Session, held: Held, *, error: str, spent: bool) -> None:
    """Hand a claimed step back for a retry. A retry that spent nothing (the database was
    away, the LLM had no room) does not count as a claim either: waiting never wears a
    step out (see the sweeper's ``max_claims``)."""
    changes = _settled(held, StepStatus.PENDING, error=error, metadata=None, now=utcnow())
    if not spent:
        changes["attempts"] = _STEPS.c.attempts - 1
    session.execute(sa.update(_STEPS).where(_step(held.run.id, held.step_name)).values(changes))


def _settled(
    held: Held,
    status: StepStatus,
    *,
    error: str | None,
    metadata: dict[str, object] | None,
    now: datetime,
) -> dict[str, Any]:
    """The step's columns once it moves to ``status``."""
    changes: dict[str, Any] = {"status": status, "updated_at": now, "error": error}
    if metadata:
        changes["metadata"] = {**held.metadata, **metadata}
    if status is StepStatus.PENDING:
        changes["claimed_by"] = None
    elif status.is_terminal:
        changes["completed_at"] = now
    return changes


def touch_run(session: Session, run: Run, **added: int | Decimal) -> None:
    """Mark the locked ``run`` as alive (the sweeper watches), adding ``added`` to its
    counters, in one statement; the object is kept in step without a flush."""
    now = utcnow()
    session.execute(
        sa.update(_RUNS)
        .where(_RUNS.c.id == run.id)
        .values(updated_at=now, **{key: _RUNS.c[key] + value for key, value in added.items()})
    )
    for key, value in added.items():
        set_committed_value(run, key, getattr(run, key) + value)
    set_committed_value(run, "updated_at", now)


def _update_run(session: Session, run: Run, changes: dict[str, Any]) -> None:
    """Write ``changes`` to the run's row and its object alike, with no unit of work."""
    session.execute(sa.update(_RUNS).where(_RUNS.c.id == run.id).values(changes))
    for key, value in changes.items():
        set_committed_value(run, key, value)


def _step(run_id: uuid.UUID, step_name: str) -> sa.ColumnElement[bool]:
    return sa.and_(_STEPS.c.run_id == run_id, _STEPS.c.step_name == step_name)


def end_run(
    run: Run,
    status: RunStatus,
    *,
    error_code: str | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> None:
    """Finish the run; its unfinished steps are marked skipped so nothing looks in flight,
    and its webhook deliveries are queued in the same transaction."""
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
    session = object_session(run)
    if session is not None:
        webhooks.queue_for_run(session, run)


def reopen(
    run: Run, *, deadline_at: datetime, now: datetime, only: Collection[str] | None = None
) -> None:
    """Queue a run again: its failed and skipped steps (of ``only``, when given) become
    pending, the rest are kept. Its enqueue counts as unconfirmed until the caller's
    publish is."""
    for step in run.steps:
        if only is not None and step.step_name not in only:
            continue
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
