"""Sending delivery attempts as Dramatiq messages on the job queue, by actor name (so a
producer needs the broker, not the actors)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import webhooks
from consensus_engine.messaging import job_queue
from consensus_engine.settings import Settings

ACTOR = "webhook"


def send(broker: dramatiq.Broker, settings: Settings, delivery_ids: Sequence[uuid.UUID]) -> None:
    for delivery_id in delivery_ids:
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=job_queue(settings),
            actor_name=ACTOR,
            args=(str(delivery_id),),
            kwargs={},
            options={},
        )
        broker.enqueue(message)


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
