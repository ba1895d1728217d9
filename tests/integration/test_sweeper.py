"""The sweeper against real PostgreSQL: which stuck runs it resends, fails or leaves alone.

Time is simulated by passing ``now=`` to :func:`sweep` (and old timestamps to rows), so no
test sleeps. No broker is involved: the sweep only decides which jobs to send.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from consensus_engine.db import claims
from consensus_engine.db.engine import session_factory
from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.runs import (
    AGGREGATE_STEP,
    EXPAND_STEP,
    Job,
    Priority,
    RunStatus,
    Stage,
    StepStatus,
    review_step,
)
from consensus_engine.pipeline.service import NewRun, RunService
from consensus_engine.pipeline.sweeper import Reconciled, SweepReport, SweepRules, reconcile, sweep

REQUEUE_AFTER = 2.0
STALE_AFTER = 10.0
UNSTARTED_AFTER = 40.0
MAX_CLAIMS = 4
RULES = SweepRules(
    requeue_after=REQUEUE_AFTER,
    stale_after=STALE_AFTER,
    unstarted_after=UNSTARTED_AFTER,
    max_claims=MAX_CLAIMS,
)
PERSONAS = DEFAULT_PERSONAS.ids


def _unsent(_jobs: Sequence[Job]) -> None:
    raise ConnectionError("no broker here: the run stays stored but unconfirmed")


def submit(session: Session, *, priority: Priority = Priority.NORMAL, timeout: float = 300) -> Run:
    """A run stored by the run service whose publish was never confirmed."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    service = RunService(session_factory(engine), _unsent, job_timeout_seconds=timeout)
    new = NewRun(
        idea="A tool that sweeps up stuck runs.",
        personas=DEFAULT_PERSONAS,
        expand=ModelChoice("offline-expand", 0.7),
        review=ModelChoice("offline-review", 0.2),
        priority=priority,
    )
    accepted = service.submit(new)
    assert not accepted.enqueued
    run = session.get(Run, accepted.run.id)
    assert run is not None
    return run


def run_sweep(session: Session, now: datetime) -> SweepReport:
    """One sweep, committed as the worker's sweeper thread commits it.

    A sweep that waited on a row lock (no SKIP LOCKED) fails after 5 s instead of hanging.
    """
    session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
    report = sweep(session, RULES, now=now)
    session.commit()
    return report


def stall(
    session: Session,
    run: Run,
    *,
    at: datetime,
    completed: tuple[str, ...] = (),
    failed: tuple[str, ...] = (),
    running: dict[str, datetime] | None = None,
) -> None:
    """Make ``run`` a running run whose last progress was at ``at``, its steps as given."""
    for step in run.steps:
        if step.step_name in completed:
            step.status, step.completed_at = StepStatus.COMPLETED, at
        elif step.step_name in failed:
            step.status, step.completed_at = StepStatus.FAILED, at
        elif running and step.step_name in running:
            step.status, step.claimed_by = StepStatus.RUNNING, "a-live-worker"
            step.updated_at = running[step.step_name]
            continue
        step.updated_at = at
    run.status, run.started_at, run.updated_at = RunStatus.RUNNING, at, at
    run.last_enqueued_at = at
    session.commit()


def reviews(*persona_ids: str) -> tuple[str, ...]:
    return tuple(review_step(p) for p in persona_ids)


# -- queued runs ------------------------------------------------------------------------------


def test_a_queued_run_never_confirmed_is_sent_once(db_session: Session) -> None:
    run = submit(db_session, priority=Priority.HIGH)
    assert run_sweep(db_session, utcnow()).jobs == []  # younger than requeue_after

    now = run.created_at + timedelta(seconds=REQUEUE_AFTER + 1)
    report = run_sweep(db_session, now)

    assert report.jobs == [Job(Stage.EXPAND, run.id, Priority.HIGH)]
    db_session.refresh(run)
    assert run.last_enqueued_at == now
    assert (run.status, run.attempts) == (RunStatus.QUEUED, 0)
    assert run_sweep(db_session, now + timedelta(seconds=UNSTARTED_AFTER - 1)).jobs == []


def test_a_queued_run_whose_message_was_confirmed_waits_its_turn(db_session: Session) -> None:
    run = submit(db_session)
    run.last_enqueued_at = utcnow()  # Pub/Sub confirmed the publish
    db_session.commit()
    assert run.last_enqueued_at is not None

    report = run_sweep(db_session, run.last_enqueued_at + timedelta(seconds=UNSTARTED_AFTER - 1))

    assert report.jobs == [] and report.timed_out == [] and report.given_up == []


def test_a_queued_run_whose_confirmed_message_never_started_is_sent_again(
    db_session: Session,
) -> None:
    """The message was confirmed, then lost (acked by a crashed consumer, dead-lettered):
    after ``unstarted_after`` the run gets its expand job again, once per window."""
    run = submit(db_session)
    run.last_enqueued_at = utcnow()  # Pub/Sub confirmed the publish
    db_session.commit()
    assert run.last_enqueued_at is not None

    now = run.last_enqueued_at + timedelta(seconds=UNSTARTED_AFTER + 1)
    report = run_sweep(db_session, now)

    assert report.jobs == [Job(Stage.EXPAND, run.id, Priority.NORMAL)]
    db_session.refresh(run)
    assert (run.status, run.attempts, run.last_enqueued_at) == (RunStatus.QUEUED, 0, now)
    assert run_sweep(db_session, now + timedelta(seconds=UNSTARTED_AFTER - 1)).jobs == []


# -- running runs -----------------------------------------------------------------------------


def test_a_stalled_run_gets_its_pending_reviews_again(db_session: Session) -> None:
    """Pending steps wait out ``unstarted_after`` (a backlog may hold their messages), and
    sending them again is no takeover: it does not count towards giving up."""
    run = submit(db_session, priority=Priority.HIGH)
    then = utcnow()
    stall(db_session, run, at=then, completed=(EXPAND_STEP, *reviews(*PERSONAS[:3])))

    assert run_sweep(db_session, then + timedelta(seconds=UNSTARTED_AFTER - 1)).jobs == []
    now = then + timedelta(seconds=UNSTARTED_AFTER + 1)
    report = run_sweep(db_session, now)

    assert sorted(report.jobs, key=lambda j: str(j.persona_id)) == [
        Job(Stage.REVIEW, run.id, Priority.HIGH, persona_id) for persona_id in sorted(PERSONAS[3:])
    ]
    db_session.refresh(run)
    assert (run.attempts, run.last_enqueued_at, run.updated_at) == (0, now, now)


def test_a_step_whose_heartbeat_stopped_is_taken_over_after_the_claim_timeout(
    db_session: Session,
) -> None:
    """A worker died mid-step: its claim's heartbeat went silent. The sweeper sends that
    step after ``stale_after``, long before pending steps would be resent."""
    run = submit(db_session)
    then = utcnow()
    dead = {review_step(PERSONAS[0]): then}
    stall(db_session, run, at=then, completed=(EXPAND_STEP, *reviews(*PERSONAS[2:])), running=dead)

    assert run_sweep(db_session, then + timedelta(seconds=STALE_AFTER - 1)).jobs == []
    report = run_sweep(db_session, then + timedelta(seconds=STALE_AFTER + 1))

    assert report.jobs == [Job(Stage.REVIEW, run.id, Priority.NORMAL, PERSONAS[0])]
    db_session.refresh(run)
    assert run.attempts == 1


def test_a_stalled_run_whose_reviews_all_ended_gets_its_aggregate(db_session: Session) -> None:
    run = submit(db_session)
    then = utcnow()
    ended = reviews(*PERSONAS[1:])
    stall(db_session, run, at=then, completed=(EXPAND_STEP, *ended), failed=reviews(PERSONAS[0]))

    report = run_sweep(db_session, then + timedelta(seconds=UNSTARTED_AFTER + 1))

    assert report.jobs == [Job(Stage.AGGREGATE, run.id, Priority.NORMAL)]


def test_a_review_held_by_a_live_worker_is_not_resent(db_session: Session) -> None:
    run = submit(db_session)
    then = utcnow()
    now = then + timedelta(seconds=UNSTARTED_AFTER + 1)
    live = {review_step(PERSONAS[0]): now - timedelta(seconds=1)}
    done = (EXPAND_STEP, *reviews(*PERSONAS[2:]))
    stall(db_session, run, at=then, completed=done, running=live)

    report = run_sweep(db_session, now)
    assert report.jobs == [Job(Stage.REVIEW, run.id, Priority.NORMAL, PERSONAS[1])]

    # Once that one review is done, the live worker's review alone is not resent.
    step = next(s for s in run.steps if s.step_name == review_step(PERSONAS[1]))
    step.status = StepStatus.COMPLETED
    run.updated_at = then
    db_session.commit()
    report = run_sweep(db_session, now)
    assert report.jobs == []
    db_session.refresh(run)
    assert (run.attempts, run.updated_at) == (0, then)


def test_a_step_that_keeps_stopping_its_workers_fails_the_run_as_stalled(
    db_session: Session,
) -> None:
    """Every worker that claims the step dies during it (a poison step): once the step was
    claimed ``max_claims`` times, the run fails instead of being resumed again."""
    run = submit(db_session)
    now = utcnow()
    stall(
        db_session,
        run,
        at=now,
        completed=(EXPAND_STEP,),
        running=dict.fromkeys(reviews(*PERSONAS), now),
    )
    poisoned = next(s for s in run.steps if s.step_name == review_step(PERSONAS[0]))
    poisoned.attempts = MAX_CLAIMS - 1
    db_session.commit()

    now += timedelta(seconds=STALE_AFTER + 1)
    report = run_sweep(db_session, now)
    assert len(report.jobs) == len(PERSONAS) and report.given_up == []
    db_session.refresh(run)
    assert run.attempts == 1

    poisoned.attempts = MAX_CLAIMS  # its takeover was claimed, and that worker died too
    db_session.commit()
    report = run_sweep(db_session, now + timedelta(seconds=STALE_AFTER + 1))

    assert report.jobs == [] and report.given_up == [run.id]
    db_session.refresh(run)
    assert (run.status, run.error_code) == (RunStatus.FAILED, "stalled")
    assert {s.step_name for s in run.steps if s.status is StepStatus.SKIPPED} == {
        *reviews(*PERSONAS),
        AGGREGATE_STEP,
    }


def test_a_run_past_its_deadline_fails_with_timeout(db_session: Session) -> None:
    run = submit(db_session, timeout=60)
    stall(db_session, run, at=utcnow(), completed=(EXPAND_STEP,))
    assert run.deadline_at is not None

    report = run_sweep(db_session, run.deadline_at + timedelta(seconds=1))

    assert report.timed_out == [run.id] and report.jobs == []
    db_session.refresh(run)
    assert (run.status, run.error_code) == (RunStatus.FAILED, "timeout")
    statuses = {s.step_name: s.status for s in run.steps}
    assert statuses.pop(EXPAND_STEP) is StepStatus.COMPLETED
    assert set(statuses.values()) == {StepStatus.SKIPPED}
    assert report.counts == {"failed": 1}


def test_counts_report_runs_per_status(db_session: Session) -> None:
    runs = [submit(db_session) for _ in range(5)]
    for run, status in zip(
        runs[2:], (RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.CANCELLED), strict=True
    ):
        run.status = status
    db_session.commit()

    report = run_sweep(db_session, utcnow())

    assert report.jobs == []
    assert report.counts == {"queued": 2, "running": 1, "completed": 1, "cancelled": 1}


# -- concurrent sweepers ----------------------------------------------------------------------


@pytest.fixture
def other_session(db_engine: Engine) -> Iterator[Session]:
    """A second connection, standing for another sweeper or a stage holding a run."""
    session = session_factory(db_engine)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def test_a_run_locked_elsewhere_is_skipped(db_session: Session, other_session: Session) -> None:
    locked, free = submit(db_session), submit(db_session)
    now = utcnow() + timedelta(seconds=REQUEUE_AFTER + 1)
    assert claims.lock_run(other_session, locked.id) is not None  # held until rollback

    report = run_sweep(db_session, now)

    assert report.jobs == [Job(Stage.EXPAND, free.id, Priority.NORMAL)]
    db_session.refresh(locked)
    assert locked.last_enqueued_at is None

    other_session.rollback()
    assert run_sweep(db_session, now).jobs == [Job(Stage.EXPAND, locked.id, Priority.NORMAL)]


def _ids(report: SweepReport) -> set[uuid.UUID]:
    return {job.run_id for job in report.jobs}


def test_a_locked_run_past_its_deadline_is_left_for_a_later_sweep(
    db_session: Session, other_session: Session
) -> None:
    run = submit(db_session, timeout=60)
    assert run.deadline_at is not None
    now = run.deadline_at + timedelta(seconds=1)
    assert claims.lock_run(other_session, run.id) is not None

    report = run_sweep(db_session, now)
    assert report.timed_out == [] and _ids(report) == set()
    db_session.refresh(run)
    assert run.status is RunStatus.QUEUED

    other_session.rollback()
    assert run_sweep(db_session, now).timed_out == [run.id]


# -- dead letters -----------------------------------------------------------------------------


def reconcile_now(session: Session, letters: list[tuple[Job, str]]) -> Reconciled:
    outcome = reconcile(session, letters, RULES)
    session.commit()
    return outcome


def test_a_dead_lettered_message_of_a_step_not_ended_is_sent_again(db_session: Session) -> None:
    run = submit(db_session)
    stall(db_session, run, at=utcnow(), completed=(EXPAND_STEP,))
    job = Job(Stage.REVIEW, run.id, Priority.NORMAL, PERSONAS[0])

    outcome = reconcile_now(db_session, [(job, "not acked after 5 deliveries")])

    assert (outcome.jobs, outcome.failed) == ([job], [])
    db_session.refresh(run)
    assert (run.status, run.attempts) == (RunStatus.RUNNING, 1)


def test_dead_letters_of_ended_steps_and_runs_are_done_with(db_session: Session) -> None:
    """Also a run past its deadline: the sweep fails it, its messages are not sent again."""
    run, ended, overdue = submit(db_session), submit(db_session), submit(db_session, timeout=60)
    stall(db_session, run, at=utcnow(), completed=(EXPAND_STEP,))
    claims.end_run(ended, RunStatus.CANCELLED)
    overdue.deadline_at = utcnow() - timedelta(seconds=1)
    db_session.commit()
    letters = [
        (Job(Stage.EXPAND, run.id, Priority.NORMAL), "a late duplicate"),
        (Job(Stage.EXPAND, ended.id, Priority.NORMAL), "not acked after 5 deliveries"),
        (Job(Stage.EXPAND, overdue.id, Priority.NORMAL), "TooOld: the message is too old"),
    ]

    assert reconcile_now(db_session, letters) == Reconciled()


def test_a_dead_letter_of_a_step_claimed_too_often_fails_the_run(db_session: Session) -> None:
    run = submit(db_session)
    stall(db_session, run, at=utcnow(), completed=(EXPAND_STEP,))
    step = next(s for s in run.steps if s.step_name == review_step(PERSONAS[0]))
    step.attempts = MAX_CLAIMS
    db_session.commit()
    job = Job(Stage.REVIEW, run.id, Priority.NORMAL, PERSONAS[0])

    outcome = reconcile_now(db_session, [(job, "not acked after 5 deliveries")])

    assert (outcome.jobs, outcome.failed) == ([], [run.id])
    db_session.refresh(run)
    assert (run.status, run.error_code) == (RunStatus.FAILED, "dead_lettered")
    assert run.error == f"{review_step(PERSONAS[0])}: not acked after 5 deliveries"
