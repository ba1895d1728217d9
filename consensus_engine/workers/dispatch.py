"""Between Dramatiq and the pipeline: run a stage for the current message and translate
its outcome (send the follow-ups, or raise ``Retry`` with the chosen delay)."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import dramatiq
from dramatiq.middleware import CurrentMessage
from google.api_core.exceptions import GoogleAPIError
from sqlalchemy.orm import Session, sessionmaker

from brokers.pubsub import PubSubBroker
from consensus_engine.domain.runs import Job, Stage
from consensus_engine.jobs import job_of, priority_of, send_jobs
from consensus_engine.messaging import job_queues
from consensus_engine.observability.logs import bound, lifecycle
from consensus_engine.observability.metrics import pipeline_metrics
from consensus_engine.pipeline import sweeper
from consensus_engine.pipeline.outcome import OutcomeKind
from consensus_engine.pipeline.service import budget_standings
from consensus_engine.settings import Settings
from consensus_engine.webhooks import messages as webhook_messages
from consensus_engine.workers.runtime import runtime

logger = logging.getLogger(__name__)
_HOST = socket.gethostname()
FREE_RETRIES = "free_retries"
"""The message option counting the retries that spend none of the step's: those an outage
or a wait for LLM capacity caused."""


def execute(settings: Settings, stage: Stage, run_id: str, persona_id: str | None = None) -> None:
    """Run one stage for the message being processed, then do what its outcome says."""
    message = CurrentMessage.get_current_message()
    assert message is not None, "stages run inside a Dramatiq worker"
    retries = int(message.options.get("retries", 0))
    free = int(message.options.get(FREE_RETRIES, 0))
    holder = f"{_HOST}:{os.getpid()}:{message.message_id}:{retries}"
    with bound(message_id=message.message_id, attempt=retries + 1):
        priority = priority_of(settings, message.queue_name)
        job = Job(stage, uuid.UUID(run_id), priority, persona_id)
        pipeline = runtime(settings).pipeline
        outcome = pipeline.run(job, holder=holder, retries=max(0, retries - free))
        if outcome.kind is OutcomeKind.RETRY:
            assert outcome.retry_after is not None
            if not outcome.spends_retry:  # Dramatiq's Retries middleware sends options on
                message.options[FREE_RETRIES] = free + 1
            raise dramatiq.Retry(
                "the stage asked for a retry", delay=int(outcome.retry_after * 1000)
            )
        broker = dramatiq.get_broker()
        send_jobs(broker, settings, outcome.follow_ups)
        if outcome.run_ended:  # its webhooks are due now
            webhook_messages.send_due(broker, settings, pipeline.sessions, run_id=job.run_id)


def sweep_once(
    settings: Settings, broker: dramatiq.Broker, sessions: sessionmaker[Session]
) -> sweeper.SweepReport:
    """One pass of the sweeper: commit its decisions, then send the messages it asks for;
    then the same for the job queues' dead letters; then, with a retention period, delete a
    batch of the runs past it (a transaction of its own, one audit line per run)."""
    rules = sweeper.SweepRules.from_settings(settings)
    with sessions.begin() as session:
        report = sweeper.sweep(session, rules)
    send_jobs(broker, settings, report.jobs)
    if settings.run_retention_days is not None:
        with sessions.begin() as session:
            report.deleted = sweeper.delete_expired(
                session, retention_days=settings.run_retention_days
            )
        for run in report.deleted:
            lifecycle(
                "run_deleted",
                run_id=run.run_id,
                tenant=run.tenant,
                status=run.status,
                reason="retention",
            )
    webhook_messages.send_due(broker, settings, sessions)
    if isinstance(broker, PubSubBroker):
        for queue_name in job_queues(settings):
            try:
                reconciled = reconcile_dead_letters(settings, broker, sessions, queue_name, rules)
            except GoogleAPIError as error:  # the next pass tries again
                logger.warning("Could not read the dead letters of %s: %s", queue_name, error)
                continue
            report.jobs += reconciled.jobs
            report.given_up += reconciled.failed
    metrics = pipeline_metrics()
    metrics.runs_in_status(report.counts)
    budgets = settings.budgets
    with sessions() as session:
        for tenant in sorted(budgets.named):
            metrics.budget_left(tenant, budget_standings(session, budgets, tenant))
    for action, count in (
        ("resent", len(report.jobs)),
        ("timed_out", len(report.timed_out)),
        ("given_up", len(report.given_up)),
        ("deleted", len(report.deleted)),
    ):
        if count:
            metrics.sweeper_action(action, count)
            lifecycle("sweeper", run_id=None, action=action, count=count)
    for run_id in report.timed_out + report.given_up:
        metrics.run_finished(status="failed", decision=None, seconds=None)
        lifecycle("job_failed", run_id=run_id, reason="swept", level=logging.WARNING)
    return report


def reconcile_dead_letters(
    settings: Settings,
    broker: PubSubBroker,
    sessions: sessionmaker[Session],
    queue_name: str,
    rules: sweeper.SweepRules,
) -> sweeper.Reconciled:
    """Act on a queue's dead-lettered stage messages: commit the decisions, send the jobs
    again, then ack the letters (a crash in between leaves them to the next pass)."""
    letters = broker.dead_letters(queue_name)
    staged = [(letter, job_of(settings, letter.message)) for letter in letters if letter.message]
    known = [(letter, job) for letter, job in staged if job is not None]
    if not known:
        return sweeper.Reconciled()
    with sessions.begin() as session:
        pairs = [(job, letter.reason) for letter, job in known]
        reconciled = sweeper.reconcile(session, pairs, rules)
    send_jobs(broker, settings, reconciled.jobs)
    broker.ack_dead_letters(queue_name, [letter for letter, _ in known])
    for letter, job in known:
        lifecycle(
            "sweeper",
            run_id=job.run_id,
            action="dead_letter_resent" if job in reconciled.jobs else "dead_letter_settled",
            step=job.step_name,
            reason=letter.reason,
            level=logging.WARNING,
        )
    return reconciled
