"""Sending stage messages: used by the worker, the sweeper, the API, the CLI and the demo.

Messages are built by actor name, so a producer needs the broker but not the actors
(importing :mod:`consensus_engine.actors` would set up a whole worker).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import dramatiq

from consensus_engine.domain.runs import Priority
from consensus_engine.observability.logs import lifecycle
from consensus_engine.queues import job_queue
from consensus_engine.settings import Settings

Stage = Literal["expand", "review", "aggregate"]


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


def enqueue_run(
    broker: dramatiq.Broker, settings: Settings, run_id: uuid.UUID, priority: Priority
) -> dramatiq.Message[Any]:
    """Send a new run's first message; afterwards record it with ``submit.mark_enqueued``."""
    return send(broker, "expand", str(run_id), queue_name=job_queue(settings, priority))
