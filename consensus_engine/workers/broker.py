"""The worker's broker and middleware, built from settings."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    CurrentMessage,
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from consensus_engine.pipeline.stages import is_retryable
from consensus_engine.queues import build_pubsub_broker, job_queues
from consensus_engine.settings import Settings
from consensus_engine.workers.metrics_server import PipelinePrometheus
from consensus_engine.workers.services import WorkerServices


def worker_middleware(settings: Settings) -> list[Middleware]:
    """Dramatiq's middleware, configured by the deployment guide's settings.

    Retries apply to transient errors only (a bad API key fails at once); the actors
    compute their own backoff (``RETRY_*``), which Dramatiq's ``Retry`` carries. No
    actor asks for shutdown notifications: on SIGTERM in-flight steps finish within
    the shutdown timeout instead of being interrupted.
    """
    max_retries = settings.max_retries_per_persona

    def retry_when(retries: int, error: BaseException) -> bool:
        return retries < max_retries and is_retryable(error)

    return [
        PipelinePrometheus(),
        AgeLimit(max_age=settings.worker_job_timeout_seconds * 1000),
        TimeLimit(time_limit=settings.worker_step_timeout_seconds * 1000),
        ShutdownNotifications(),
        Retries(
            max_retries=max_retries,
            min_backoff=int(settings.retry_initial_backoff_seconds * 1000),
            max_backoff=int(settings.retry_max_backoff_seconds * 1000),
            retry_when=retry_when,
        ),
        CurrentMessage(),
        WorkerServices(settings),
    ]


def build_broker(settings: Settings) -> dramatiq.Broker:
    """Pub/Sub normally; with ``PUBSUB_USE_MOCK`` an in-process broker that needs nothing."""
    middleware = worker_middleware(settings)
    if not settings.pubsub_use_mock:
        return build_pubsub_broker(settings, middleware=middleware)
    broker = StubBroker(middleware=middleware)
    for queue_name in job_queues(settings):
        broker.declare_queue(queue_name)
    return broker
