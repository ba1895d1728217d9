"""Recovering runs that stopped moving, so no run stays stuck forever.

A run can stall when the publish after its commit was lost, when a worker died
after storing a result but before sending the next message, or when a message was
dead-lettered. The sweeper finds such runs from the database alone and says which
stage messages to send again; duplicates are harmless because every stage claims
its step. A run past its time limit, or one resumed too often, fails instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consensus_engine.db import claims
from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.runs import (
    AGGREGATE_STEP,
    EXPAND_STEP,
    Priority,
    RunStatus,
    StepStatus,
    persona_of_step,
)

JobKind = Literal["expand", "review", "aggregate"]
MAX_RESUMES = 3
"""A run resumed this many times in a row with no step settling in between fails:
something keeps breaking it. (``runs.attempts`` counts those resumes.)"""
_BATCH = 200
_ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True)
class Job:
    """A stage message to send."""

    kind: JobKind
    run_id: uuid.UUID
    priority: Priority
    persona_id: str | None = None


@dataclass
class SweepReport:
    jobs: list[Job] = field(default_factory=list)
    timed_out: list[uuid.UUID] = field(default_factory=list)
    given_up: list[uuid.UUID] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    """Runs in each status, for the ``consensus_runs`` gauge."""


def sweep(
    session: Session,
    *,
    requeue_after: float,
    stale_after: float,
    now: datetime | None = None,
) -> SweepReport:
    """Find stuck runs and decide what to do; the caller commits, then sends ``jobs``.

    - past its deadline: fail it (``timeout``);
    - queued, and its enqueue never confirmed for ``requeue_after`` seconds: send expand
      (a queued run whose message was confirmed just waits its turn; Pub/Sub keeps it);
    - running and untouched for ``stale_after``: send each stage that can move now, at
      most ``MAX_RESUMES`` times.
    """
    now = now or utcnow()
    report = SweepReport()
    for run in _locked(session, Run.deadline_at < now):
        claims.time_out(run)
        report.timed_out.append(run.id)
    never_sent = sa.and_(
        Run.status == RunStatus.QUEUED,
        Run.last_enqueued_at.is_(None),
        Run.created_at < now - timedelta(seconds=requeue_after),
    )
    stalled = sa.and_(
        Run.status == RunStatus.RUNNING,
        Run.updated_at < now - timedelta(seconds=stale_after),
    )
    for run in _locked(session, sa.or_(never_sent, stalled)):
        jobs = resumable_jobs(run, now=now, stale_after=stale_after)
        if not jobs:
            continue
        resuming = run.status is RunStatus.RUNNING
        if resuming and run.attempts >= MAX_RESUMES:
            claims.end_run(
                run,
                RunStatus.FAILED,
                error_code="stalled",
                error=f"no step settled after {MAX_RESUMES} attempts in a row to resume the run",
            )
            report.given_up.append(run.id)
            continue
        if resuming:
            run.attempts += 1
        run.last_enqueued_at = now
        run.updated_at = now
        report.jobs += jobs
    session.flush()
    report.counts = run_counts(session)
    return report


def _locked(session: Session, condition: sa.ColumnElement[bool]) -> Iterable[Run]:
    """Active runs matching ``condition``, locked; rows another sweeper holds are skipped."""
    return session.scalars(
        sa.select(Run)
        .where(Run.status.in_(_ACTIVE), condition)
        .order_by(Run.created_at)
        .limit(_BATCH)
        .with_for_update(skip_locked=True)
    ).all()


def resumable_jobs(run: Run, *, now: datetime, stale_after: float) -> list[Job]:
    """The stage messages that would move the run on from where it stands."""
    steps = {s.step_name: s for s in run.steps}

    def movable(name: str) -> bool:
        step = steps.get(name)
        if step is None or step.status.is_terminal:
            return False
        if step.status is StepStatus.PENDING:
            return True
        return (now - step.updated_at).total_seconds() >= stale_after

    if EXPAND_STEP in steps and not steps[EXPAND_STEP].status.is_terminal:
        return [Job("expand", run.id, run.priority)] if movable(EXPAND_STEP) else []
    reviews = [name for name in steps if persona_of_step(name) is not None]
    open_reviews = [name for name in reviews if not steps[name].status.is_terminal]
    if open_reviews:
        return [
            Job("review", run.id, run.priority, persona_of_step(name))
            for name in open_reviews
            if movable(name)
        ]
    if movable(AGGREGATE_STEP):
        return [Job("aggregate", run.id, run.priority)]
    return []


def run_counts(session: Session) -> dict[str, int]:
    rows = session.execute(sa.select(Run.status, sa.func.count()).group_by(Run.status))
    return {str(status): int(count) for status, count in rows}
