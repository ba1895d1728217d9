"""Sending jobs as stage messages: used by the worker, the sweeper and the run service.

A job becomes a message for the actor named after its stage, on the queue of its run's
priority. Messages are built by actor name, so a producer needs the broker but not the
actors (importing :mod:`consensus_engine.actors` would set up a whole worker).
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq
from dramatiq.common import q_name

from consensus_engine.domain.runs import Job, Priority, Stage
from consensus_engine.messaging import job_queue
from consensus_engine.observability.logs import lifecycle
from consensus_engine.pipeline.service import JobSender
from consensus_engine.settings import Settings


def send(broker: dramatiq.Broker, settings: Settings, job: Job) -> dramatiq.Message[Any]:
    """Publish one job's message and wait for Pub/Sub's confirmation."""
    args = (str(job.run_id),) if job.persona_id is None else (str(job.run_id), job.persona_id)
    queue_name = job_queue(settings, job.priority)
    delay_ms = None if job.delay_seconds is None else int(job.delay_seconds * 1000)
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue_name, actor_name=job.stage.value, args=args, kwargs={}, options={}
    )
    sent: dramatiq.Message[Any] = broker.enqueue(message, delay=delay_ms)
    lifecycle(
        "enqueued",
        run_id=job.run_id,
        step=job.stage.value,
        persona=job.persona_id,
        message_id=sent.message_id,
        queue=queue_name,
        delay_ms=delay_ms,
    )
    return sent


def job_of(settings: Settings, message: dramatiq.Message[Any]) -> Job | None:
    """The job a stage message stands for (``send``'s inverse); ``None`` for any other."""
    try:
        stage = Stage(message.actor_name)
        run_id = uuid.UUID(str(message.args[0]))
        persona_id = str(message.args[1]) if len(message.args) > 1 else None
    except (ValueError, IndexError):
        return None
    if stage.per_persona != (persona_id is not None):
        return None
    return Job(stage, run_id, priority_of(settings, message.queue_name), persona_id)


def priority_of(settings: Settings, queue_name: str) -> Priority:
    """The priority whose queue ``queue_name`` is (a delay queue counts as its queue)."""
    base = q_name(queue_name)
    return next((p for p in Priority if job_queue(settings, p) == base), Priority.NORMAL)


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """This process's publishing threads (created after a fork, never inherited)."""
    with _pools_lock:
        return _pools.setdefault(
            os.getpid(), ThreadPoolExecutor(max_workers=8, thread_name_prefix="publish")
        )


def publish_all(publishes: Sequence[Callable[[], object]]) -> None:
    """Run several publishes at once: each waits for Pub/Sub's confirmation, so one after
    another would add their round trips up. Raises the first failure."""
    if len(publishes) == 1:
        publishes[0]()
        return
    # Each publish runs in this thread's context, so it joins the caller's trace and logs
    # with its bound fields.
    futures = [_pool().submit(contextvars.copy_context().run, publish) for publish in publishes]
    for future in futures:
        future.result()


def send_jobs(broker: dramatiq.Broker, settings: Settings, jobs: Sequence[Job]) -> None:
    """Send several jobs at once (see :func:`publish_all`)."""
    publish_all([functools.partial(send, broker, settings, job) for job in jobs])


def job_sender(broker: dramatiq.Broker, settings: Settings) -> JobSender:
    """The run service's publisher over ``broker``."""
    return lambda jobs: send_jobs(broker, settings, jobs)
