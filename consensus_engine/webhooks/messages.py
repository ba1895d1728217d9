"""Sending delivery attempts as Dramatiq messages on the job queue, by actor name (so a
producer needs the broker, not the actors)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import webhooks
from consensus_engine.jobs import publish_all
from consensus_engine.messaging import job_queue
from consensus_engine.settings import Settings

ACTOR = "webhook"


def send(broker: dramatiq.Broker, settings: Settings, delivery_ids: Sequence[uuid.UUID]) -> None:
    """One attempt message per delivery, published at once (see :func:`publish_all`)."""
    queue_name = job_queue(settings)
    publish_all(
        [
            functools.partial(broker.enqueue, _message(queue_name, delivery_id))
            for delivery_id in delivery_ids
        ]
    )


def _message(queue_name: str, delivery_id: uuid.UUID) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=queue_name, actor_name=ACTOR, args=(str(delivery_id),), kwargs={}, options={}
    )


def send_due(
    broker: dramatiq.Broker,
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    run_id: uuid.UUID | None = None,
) -> int:
    """Send the deliveries that are due (of one run, when given); how many were sent."""
    with sessions.begin() as session:
        due = webhooks.take_due(session, run_id=run_id)
    send(broker, settings, due)
    return len(due)
