"""The worker's Dramatiq middleware, built from settings; ``messaging.build_broker`` takes it."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import (
    AgeLimit,
    CurrentMessage,
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.worker import QUEUE_PREFETCH

from consensus_engine.settings import Settings
from consensus_engine.workers.metrics_server import PipelinePrometheus
from consensus_engine.workers.services import WorkerServices


def worker_middleware(settings: Settings) -> list[Middleware]:
    """Dramatiq's middleware, configured by the deployment guide's settings.

    Dramatiq retries a message only when its stage asked, by raising ``Retry`` with the
    delay the retry policy chose (:mod:`consensus_engine.pipeline.retries`). No actor
    asks for shutdown notifications: on SIGTERM in-flight steps finish within the
    shutdown timeout instead of being interrupted.
    """
    return [
        Prefetch(),
        PipelinePrometheus(),
        AgeLimit(max_age=settings.worker_job_timeout_seconds * 1000),
        TimeLimit(time_limit=settings.worker_step_timeout_seconds * 1000),
        ShutdownNotifications(),
        Retries(retry_when=_stage_asked),
        CurrentMessage(),
        WorkerServices(settings),
    ]


class Prefetch(Middleware):
    """Lease from each queue no more messages than the worker has threads to start them.

    Dramatiq asks for twice as many by default. Every leased message counts one delivery
    each time a worker crashes or restarts with it unstarted, and Pub/Sub dead-letters a
    message after ``PUBSUB_MAX_DELIVERY_ATTEMPTS`` deliveries, run or not.
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not QUEUE_PREFETCH:  # an operator's ``dramatiq_queue_prefetch`` wins
            worker.queue_prefetch = worker.worker_threads


def _stage_asked(_retries: int, error: BaseException) -> bool:
    return isinstance(error, dramatiq.Retry)
