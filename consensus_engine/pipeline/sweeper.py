"""Recovering runs that stopped moving, so no run stays stuck forever.

A run can stall when the publish after its commit was lost, when a worker died
after storing a result but before sending the next message, or when a message was
dead-lettered. The sweeper finds such runs from the database alone and says which
stage messages to send again; duplicates are harmless because every stage claims
its step. A run past its time limit, or one resumed too often, fails instead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from consensus_engine.db import claims, reads
from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.runs import (
    AGGREGATE_STEP,
    EXPAND_STEP,
    Job,
    RunStatus,
    Stage,
    StepStatus,
    persona_of_step,
)

MAX_RESUMES = 3
"""A run resumed this many times in a row with no step settling in between fails:
something keeps breaking it. (``runs.attempts`` counts those resumes.)"""
_BATCH = 200


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
    for run in claims.lock_overdue_runs(session, now, limit=_BATCH):
        claims.time_out(run)
        report.timed_out.append(run.id)
    stuck = claims.lock_stuck_runs(
        session,
        never_sent_before=now - timedelta(seconds=requeue_after),
        silent_since=now - timedelta(seconds=stale_after),
        limit=_BATCH,
    )
    for run in stuck:
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
    report.counts = reads.run_counts(session)
    return report


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
        return [Job(Stage.EXPAND, run.id, run.priority)] if movable(EXPAND_STEP) else []
    reviews = [name for name in steps if persona_of_step(name) is not None]
    open_reviews = [name for name in reviews if not steps[name].status.is_terminal]
    if open_reviews:
        return [
            Job(Stage.REVIEW, run.id, run.priority, persona_of_step(name))
            for name in open_reviews
            if movable(name)
        ]
    if movable(AGGREGATE_STEP):
        return [Job(Stage.AGGREGATE, run.id, run.priority)]
    return []
