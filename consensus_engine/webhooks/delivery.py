"""Attempting one delivery: the use case behind the ``webhook`` actor.

At least once: an attempt whose worker dies before recording it is made again once its
lease ends; receivers tell repeats apart by ``webhook-id``, which every attempt of a
delivery shares.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import webhooks
from consensus_engine.observability.logs import lifecycle
from consensus_engine.settings import Settings
from consensus_engine.webhooks.sender import post


def message_id(delivery_id: uuid.UUID) -> str:
    """The ``webhook-id`` of every attempt at a delivery."""
    return f"msg_{delivery_id.hex}"


def deliver(settings: Settings, sessions: sessionmaker[Session], delivery_id: uuid.UUID) -> None:
    """One attempt; then the delivery is delivered, due again after the next of
    ``WEBHOOK_RETRY_DELAYS_SECONDS``, or failed once those are spent."""
    with sessions.begin() as session:
        attempt = webhooks.begin_attempt(session, delivery_id)
    if attempt is None:  # delivered, failed, or its endpoint disabled or deleted meanwhile
        return
    answer = post(
        attempt.url,
        attempt.secret,
        message_id(delivery_id),
        attempt.payload,
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.webhook_allow_private_targets,
    )
    delays = settings.webhook_retry_delays
    spent = attempt.attempts >= len(delays)
    retry_in = None if answer.delivered or spent else delays[attempt.attempts]
    with sessions.begin() as session:
        webhooks.record_attempt(
            session,
            attempt,
            status_code=answer.status_code,
            latency_ms=answer.latency_ms,
            error=answer.error,
            delivered=answer.delivered,
            retry_in=retry_in,
        )
    lifecycle(
        "webhook_attempt",
        run_id=attempt.payload.get("data", {}).get("run_id"),
        delivery_id=str(delivery_id),
        status_code=answer.status_code,
        duration_ms=answer.latency_ms,
        error=answer.error,
        will_retry=retry_in is not None,
        level=logging.INFO if answer.delivered else logging.WARNING,
    )
