"""Sending stage messages: used by the worker, the sweeper, the API, the CLI and the demo.

Messages are built by actor name, so a producer needs the broker but not the actors
(importing :mod:`consensus_engine.actors` would set up a whole worker).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq

from consensus_engine.domain.runs import Priority
from consensus_engine.observability.logs import lifecycle
from consensus_engine.pipeline.sweeper import Job, JobKind
from consensus_engine.queues import job_queue
from consensus_engine.settings import Settings

Stage = JobKind
"""A stage's actor name: ``expand``, ``review`` or ``aggregate``."""


def send(
    broker: dramatiq.Broker,
    stage: Stage,
    *args: str,
    queue_name: str,
    delay_ms: int | None = None,
) -> dramatiq.Message[Any]:
    """Publish one stage message on ``queue_name`` (the normal or the high-priority queue)."""
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue_name, actor_name=stage, args=args, kwargs={}, options={}
    )
    sent: dramatiq.Message[Any] = broker.enqueue(message, delay=delay_ms)
    lifecycle(
        "enqueued",
        run_id=args[0],
        step=stage,
        persona=args[1] if len(args) > 1 else None,
        message_id=sent.message_id,
        queue=queue_name,
        delay_ms=delay_ms,
    )
    return sent


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """This process's publishing threads (created after a fork, never inherited)."""
    with _pools_lock:
        return _pools.setdefault(
            os.getpid(), ThreadPoolExecutor(max_workers=8, thread_name_prefix="publish")
        )


def send_all(
    broker: dramatiq.Broker,
    stage: Stage,
    argument_lists: Sequence[tuple[str, ...]],
    *,
    queue_name: str,
) -> None:
    """Send several messages at once: each publish waits for Pub/Sub's confirmation, so
    one after another would add their round trips up. Raises the first failure."""
    futures = [
        _pool().submit(send, broker, stage, *args, queue_name=queue_name) for args in argument_lists
    ]
    for future in futures:
        future.result()


def send_jobs(broker: dramatiq.Broker, settings: Settings, found: Sequence[Job]) -> None:
    """Send the sweeper's or a retry's jobs; those of one stage and queue go out together."""
    groups: dict[tuple[Stage, Priority], list[tuple[str, ...]]] = {}
    for job in found:
        args = (str(job.run_id),) if job.persona_id is None else (str(job.run_id), job.persona_id)
        groups.setdefault((job.kind, job.priority), []).append(args)
    for (stage, priority), argument_lists in groups.items():
        send_all(broker, stage, argument_lists, queue_name=job_queue(settings, priority))


def enqueue_run(
    broker: dramatiq.Broker, settings: Settings, run_id: uuid.UUID, priority: Priority
) -> dramatiq.Message[Any]:
    """Send a new run's first message; afterwards record it with ``submit.mark_enqueued``."""
    return send(broker, "expand", str(run_id), queue_name=job_queue(settings, priority))
