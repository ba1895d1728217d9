"""Between Dramatiq and the pipeline: run a stage for the current message, send what follows."""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid

import dramatiq
from dramatiq.common import q_name
from dramatiq.middleware import CurrentMessage
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.jobs import Stage, send, send_all, send_jobs
from consensus_engine.llm import LLMRateLimitedError
from consensus_engine.observability.logs import bound, lifecycle
from consensus_engine.observability.metrics import pipeline_metrics
from consensus_engine.pipeline import sweeper
from consensus_engine.pipeline.stages import StageResult, is_retryable
from consensus_engine.settings import Settings
from consensus_engine.workers.runtime import runtime, stage_settings

_HOST = socket.gethostname()


def backoff_ms(settings: Settings, retries: int, error: BaseException) -> int:
    """Exponential backoff with jitter; a provider's Retry-After is a floor."""
    seconds = settings.retry_initial_backoff_seconds * settings.retry_backoff_multiplier**retries
    seconds = min(seconds, settings.retry_max_backoff_seconds) * random.uniform(0.9, 1.1)  # noqa: S311
    if isinstance(error, LLMRateLimitedError) and error.retry_after:
        seconds = max(seconds, min(error.retry_after, settings.retry_max_backoff_seconds))
    return int(seconds * 1000)


def execute(settings: Settings, stage: Stage, run_id: str, persona_id: str | None = None) -> None:
    """Run one stage for the message being processed, then send what must follow.

    A retryable failure becomes :class:`dramatiq.Retry` with our backoff; on the last
    attempt the stage records the failure itself and the message is acked.
    """
    message = CurrentMessage.get_current_message()
    assert message is not None, "stages run inside a Dramatiq worker"
    broker = dramatiq.get_broker()
    retries = int(message.options.get("retries", 0))
    max_retries = settings.max_retries_per_persona
    holder = f"{_HOST}:{os.getpid()}:{message.message_id}:{retries}"
    pipeline = runtime(settings).pipeline
    the_run = uuid.UUID(run_id)
    final = retries >= max_retries
    with bound(message_id=message.message_id, attempt=retries + 1):
        try:
            if stage == "review":
                assert persona_id is not None
                result = pipeline.review(
                    the_run, persona_id, holder=holder, final_attempt=final
                )
            elif stage == "expand":
                result = pipeline.expand(the_run, holder=holder, final_attempt=final)
            else:
                result = pipeline.aggregate(the_run, holder=holder, final_attempt=final)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # a time limit is an Interrupt, not an Exception
            if is_retryable(error) and not final:
                raise dramatiq.Retry(delay=backoff_ms(settings, retries, error)) from error
            raise
        _follow_up(broker, stage, result, run_id, persona_id, q_name(message.queue_name))


def _follow_up(
    broker: dramatiq.Broker,
    stage: Stage,
    result: StageResult,
    run_id: str,
    persona_id: str | None,
    queue_name: str,
) -> None:
    if result.check_again_in is not None:
        args = (run_id,) if persona_id is None else (run_id, persona_id)
        delay = int((result.check_again_in + 1) * 1000)
        send(broker, stage, *args, queue_name=queue_name, delay_ms=delay)
    if result.reviews:
        reviews = [(run_id, persona) for persona in result.reviews]
        send_all(broker, "review", reviews, queue_name=queue_name)
    if result.aggregate:
        send(broker, "aggregate", run_id, queue_name=queue_name)


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
