"""What a user may do to a run besides revising it: cancel it, or retry what failed."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from consensus_engine.db import claims
from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.runs import RunStatus, StepStatus
from consensus_engine.pipeline.sweeper import Job, resumable_jobs


class RunStateConflict(ValueError):
    """The run is not in a state that allows this; the message says which it is in."""


def cancel_run(session: Session, run_id: uuid.UUID) -> Run:
    """Stop scheduling work for a queued or running run; steps in flight finish and are dropped."""
    run = claims.lock_run(session, run_id)
    if run is None:
        raise LookupError(run_id)
    if run.status.is_terminal:
        raise RunStateConflict(f"the run is already {run.status.value}")
    claims.end_run(run, RunStatus.CANCELLED, error_code="cancelled", error="cancelled by the user")
    return run


def retry_run(session: Session, run_id: uuid.UUID, *, job_timeout_seconds: float) -> list[Job]:
    """Queue a failed run again, re-running only the steps that did not complete.

    Completed steps (the proposal, the reviews that succeeded) are kept; the run gets a
    fresh time limit. The caller commits, sends the returned jobs, then calls
    ``submit.mark_enqueued``; if that publish is lost, the sweeper sends them.
    """
    run = claims.lock_run(session, run_id)
    if run is None:
        raise LookupError(run_id)
    if run.status is not RunStatus.FAILED:
        raise RunStateConflict(f"only a failed run can be retried; this one is {run.status.value}")
    now = utcnow()
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
    run.last_enqueued_at = None  # until the caller's publish is confirmed (mark_enqueued)
    run.updated_at = now
    run.deadline_at = now + timedelta(seconds=job_timeout_seconds)
    session.flush()
    return resumable_jobs(run, now=now, stale_after=0.0)
