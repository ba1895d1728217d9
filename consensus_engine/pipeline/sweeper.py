"""Recovering runs that stopped moving, so no run stays stuck forever.

A run can stall when the publish after its commit was lost, when a worker died
(its claims' heartbeats stop), when a worker stored a result but could not send the next
message, or when a message was dead-lettered or acked without effect. The sweeper finds
such runs from the database alone and says which stage messages to send again;
duplicates are harmless because every stage claims its step. A run past its time limit,
or one resumed too often, fails instead.

With a retention period (``RUN_RETENTION_DAYS``) it also deletes runs that ended longer ago,
a batch per pass, by the rule a client's delete follows (``db/deletions.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from consensus_engine.db import claims, deletions, reads
from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.runs import Job, RunStatus, Stage, StepStatus, progress
from consensus_engine.settings import Settings

TAKEOVERS = 3
"""Claims of a step beyond its retries that the sweeper allows: a step claimed more often
without settling keeps killing its workers (or its messages keep dying), and its run
fails. A message that died before any claim spends nothing: it never ran."""
_BATCH = 200


@dataclass(frozen=True)
class SweepRules:
    """How long the sweeper lets a run be before it acts, and when it gives up."""

    requeue_after: float
    """A queued run whose publish was never confirmed."""
    stale_after: float
    """A claimed step whose heartbeat went silent: its worker died."""
    unstarted_after: float
    """A confirmed message that did not start: a queued run, or the pending steps of a
    running run that moved on no further. Long enough for a backlog to drain."""
    max_claims: int
    """A step claimed this often without settling is not resumed again."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SweepRules:
        return cls(
            requeue_after=settings.sweeper_requeue_after_seconds,
            stale_after=settings.worker_claim_timeout_seconds,
            unstarted_after=settings.sweeper_resend_unstarted_after_seconds,
            max_claims=settings.max_retries_per_persona + 1 + TAKEOVERS,
        )


@dataclass
class SweepReport:
    jobs: list[Job] = field(default_factory=list)
    timed_out: list[uuid.UUID] = field(default_factory=list)
    given_up: list[uuid.UUID] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    """Runs in each status, for the ``consensus_runs`` gauge."""
    deleted: list[deletions.Deleted] = field(default_factory=list)
    """Runs past the retention period, deleted."""


@dataclass(frozen=True)
class Resumption:
    jobs: list[Job]
    taken_over: frozenset[str] = frozenset()
    """The steps whose jobs take over a claim whose worker died (not a step not started)."""


def sweep(session: Session, rules: SweepRules, *, now: datetime | None = None) -> SweepReport:
    """Find stuck runs and decide what to do; the caller commits, then sends ``jobs``.

    - past its deadline: fail it (``timeout``);
    - queued, and its enqueue never confirmed for ``requeue_after`` seconds, or confirmed
      but not started for ``unstarted_after``: send expand;
    - running: send each step whose claim went stale, and (once the run has not moved for
      ``unstarted_after``) each pending one; a stale step claimed ``max_claims`` times
      already fails the run as ``stalled`` instead.

    Messages sent twice are harmless: every stage claims its step.
    """
    now = now or utcnow()
    report = SweepReport()
    for run in claims.lock_overdue_runs(session, now, limit=_BATCH):
        claims.time_out(run)
        report.timed_out.append(run.id)
    stuck = claims.lock_stuck_runs(
        session,
        never_sent_before=now - timedelta(seconds=rules.requeue_after),
        sent_before=now - timedelta(seconds=rules.unstarted_after),
        silent_since=now - timedelta(seconds=min(rules.stale_after, rules.unstarted_after)),
        limit=_BATCH,
    )
    for run in stuck:
        if run.status is RunStatus.QUEUED:  # nothing started: its first stage again
            resumption = Resumption([Job(Stage.EXPAND, run.id, run.priority)])
        else:
            resumption = resumable_jobs(
                run, now=now, stale_after=rules.stale_after, unstarted_after=rules.unstarted_after
            )
        if not resumption.jobs:
            continue
        worn = [s for s in run.steps if s.step_name in resumption.taken_over]
        worn = [s for s in worn if s.attempts >= rules.max_claims]
        if worn:
            claims.end_run(
                run,
                RunStatus.FAILED,
                error_code="stalled",
                error=f"{worn[0].step_name}: claimed {worn[0].attempts} times without "
                "settling; its workers keep stopping during it",
            )
            report.given_up.append(run.id)
            continue
        run.attempts += bool(resumption.taken_over)
        run.last_enqueued_at = now
        run.updated_at = now
        report.jobs += resumption.jobs
    session.flush()
    report.counts = reads.run_counts(session)
    return report


def delete_expired(
    session: Session, *, retention_days: int, now: datetime | None = None, limit: int = _BATCH
) -> list[deletions.Deleted]:
    """Delete up to ``limit`` runs that ended more than ``retention_days`` ago, oldest first,
    skipping those a revision under way still reads; the caller commits."""
    ended_before = (now or utcnow()) - timedelta(days=retention_days)
    expired = list(deletions.lock_expired(session, ended_before=ended_before, limit=limit))
    deletions.delete(session, [run.run_id for run in expired])
    return expired


def resumable_jobs(
    run: Run, *, now: datetime, stale_after: float, unstarted_after: float
) -> Resumption:
    """The stage messages that would move the run on from where it stands."""
    steps = {s.step_name: s for s in run.steps}
    waited = (now - run.updated_at).total_seconds() >= unstarted_after
    stale = {
        name
        for name, step in steps.items()
        if step.status is StepStatus.RUNNING
        and (now - step.updated_at).total_seconds() >= stale_after
    }

    def movable(name: str) -> bool:
        step = steps.get(name)
        if step is None or step.status.is_terminal:
            return False
        return name in stale or (step.status is StepStatus.PENDING and waited)

    def resumption(jobs: list[Job], names: list[str]) -> Resumption:
        return Resumption(jobs, frozenset(names) & stale)

    where = progress({name: step.status for name, step in steps.items()})
    names = [name for name in where.open_steps if movable(name)]
    return resumption([Job.of_step(name, run.id, run.priority) for name in names], names)


@dataclass
class Reconciled:
    """What became of dead-lettered stage messages."""

    jobs: list[Job] = field(default_factory=list)
    """Sent again: their runs are under way and their steps have yet to end."""
    failed: list[uuid.UUID] = field(default_factory=list)
    """Runs failed with ``dead_lettered``: their messages kept dying."""


def reconcile(
    session: Session, letters: Sequence[tuple[Job, str]], rules: SweepRules
) -> Reconciled:
    """Decide about dead-lettered stage messages (each job with why it died).

    A message whose run ended or passed its deadline (the sweep times it out), or whose
    step ended, is done with. Any other is sent again,
    unless its step was claimed ``max_claims`` times already: then the run fails at once
    with ``dead_lettered``, instead of at its deadline. (A message that died unstarted,
    held by workers that crashed, spent no claim; it is sent again until the deadline.)
    """
    outcome = Reconciled()
    now = utcnow()
    for job, why in letters:
        run = claims.lock_run(session, job.run_id)
        if run is None or run.status.is_terminal:
            continue
        if run.deadline_at is not None and run.deadline_at <= now:
            continue
        step = claims.get_step(session, job.run_id, job.step_name)
        if step is None or step.status.is_terminal:
            continue
        if step.attempts >= rules.max_claims:
            claims.end_run(
                run, RunStatus.FAILED, error_code="dead_lettered", error=f"{job.step_name}: {why}"
            )
            outcome.failed.append(run.id)
            continue
        run.attempts += 1
        run.updated_at = now
        outcome.jobs.append(job)
    session.flush()
    return outcome
