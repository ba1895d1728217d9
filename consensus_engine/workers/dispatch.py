"""Between Dramatiq and the pipeline: run a stage for the current message and translate
its outcome (send the follow-ups, or raise ``Retry`` with the chosen delay)."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import dramatiq
from dramatiq.middleware import CurrentMessage
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.domain.runs import Job, Stage
from consensus_engine.jobs import priority_of, send_jobs
from consensus_engine.observability.logs import bound, lifecycle
from consensus_engine.observability.metrics import pipeline_metrics
from consensus_engine.pipeline import sweeper
from consensus_engine.pipeline.outcome import OutcomeKind
from consensus_engine.settings import Settings
from consensus_engine.workers.runtime import runtime, stage_settings

_HOST = socket.gethostname()


def execute(settings: Settings, stage: Stage, run_id: str, persona_id: str | None = None) -> None:
    """Run one stage for the message being processed, then do what its outcome says."""
    message = CurrentMessage.get_current_message()
    assert message is not None, "stages run inside a Dramatiq worker"
    retries = int(message.options.get("retries", 0))
    holder = f"{_HOST}:{os.getpid()}:{message.message_id}:{retries}"
    with bound(message_id=message.message_id, attempt=retries + 1):
        priority = priority_of(settings, message.queue_name)
        job = Job(stage, uuid.UUID(run_id), priority, persona_id)
        outcome = runtime(settings).pipeline.run(job, holder=holder, retries=retries)
        if outcome.kind is OutcomeKind.RETRY:
            assert outcome.retry_after is not None
            raise dramatiq.Retry(
                "the stage asked for a retry", delay=int(outcome.retry_after * 1000)
            )
        send_jobs(dramatiq.get_broker(), settings, outcome.follow_ups)


def sweep_once(
    settings: Settings, broker: dramatiq.Broker, sessions: sessionmaker[Session]
) -> sweeper.SweepReport:
    """One pass of the sweeper: commit its decisions, then send the messages it asks for."""
    with sessions.begin() as session:
        report = sweeper.sweep(
            session,
            requeue_after=settings.sweeper_requeue_after_seconds,
            stale_after=stage_settings(settings).stale_after,
        )
    send_jobs(broker, settings, report.jobs)
    metrics = pipeline_metrics()
    metrics.runs_in_status(report.counts)
    for action, count in (
        ("resent", len(report.jobs)),
        ("timed_out", len(report.timed_out)),
        ("given_up", len(report.given_up)),
    ):
        if count:
            metrics.sweeper_action(action, count)
            lifecycle("sweeper", run_id=None, action=action, count=count)
    for run_id in report.timed_out + report.given_up:
        metrics.run_finished(status="failed", decision=None, seconds=None)
        lifecycle("job_failed", run_id=run_id, reason="swept", level=logging.WARNING)
    return report
