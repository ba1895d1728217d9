"""Webhook endpoints, their deliveries and attempts, in the database.

A run's end queues one delivery per subscribed endpoint in the transaction that ends it
(:func:`queue_for_run`), so an event is never lost between the run's commit and its
message; the messages that attempt them are sent after the commit, and the sweeper sends
whatever is due again (:func:`take_due`). Functions take the caller's session and never
commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from consensus_engine.db.models import Run, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from consensus_engine.db.types import utcnow
from consensus_engine.webhooks.events import RUN_EVENTS, run_event

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
LEASE = timedelta(minutes=5)
"""How long a delivery handed to a message is not handed out again: the attempt's time
limit and a margin. An attempt that dies is sent again after it."""


def queue_for_run(session: Session, run: Run) -> None:
    """The ended run's event, queued for each of its tenant's endpoints that asked for it
    (at most once per endpoint, run and event: ending again queues nothing new)."""
    event = RUN_EVENTS.get(run.status)
    if event is None:
        return
    endpoints = session.execute(
        sa.select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.tenant == run.tenant, WebhookEndpoint.enabled
        )
    ).all()
    wanted = [row.id for row in endpoints if event in row.events]
    if not wanted:
        return
    now = utcnow()
    payload = run_event(
        event,
        run_id=str(run.id),
        status=run.status.value,
        decision=None if run.decision is None else run.decision.value,
        overall_score=run.overall_score,
        error_code=run.error_code,
        at=now,
    )
    rows = [
        {
            "id": uuid.uuid4(),
            "endpoint_id": endpoint_id,
            "tenant": run.tenant,
            "run_id": run.id,
            "event": event,
            "payload": payload,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
        }
        for endpoint_id in wanted
    ]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(WebhookDelivery).values(rows).on_conflict_do_nothing())


def take_due(
    session: Session, *, run_id: uuid.UUID | None = None, limit: int = 200
) -> list[uuid.UUID]:
    """Pending deliveries whose time has come (of one run, when given), leased for
    :data:`LEASE` so that the next sweep does not send them again meanwhile."""
    now = utcnow()
    d = WebhookDelivery
    due = sa.select(d.id).where(d.status == PENDING, d.next_attempt_at <= now)
    if run_id is not None:
        due = due.where(d.run_id == run_id)
    taken = session.scalars(
        sa.update(d)
        .where(d.id.in_(due.limit(limit).scalar_subquery()))
        .values(next_attempt_at=now + LEASE)
        .returning(d.id)
    )
    return list(taken)


@dataclass(frozen=True)
class Attempt:
    """What one attempt at a delivery sends, and where."""

    delivery_id: uuid.UUID
    url: str
    secret: str
    payload: dict[str, Any]
    attempts: int
    """Attempts made before this one."""


def begin_attempt(session: Session, delivery_id: uuid.UUID) -> Attempt | None:
    """The delivery, locked, if it is still pending and its endpoint enabled."""
    row = session.execute(
        sa.select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == PENDING,
            WebhookEndpoint.enabled,
        )
        .with_for_update(of=WebhookDelivery)
    ).first()
    if row is None:
        return None
    delivery = row[0]
    return Attempt(delivery.id, row.url, row.secret, delivery.payload, delivery.attempts)


def record_attempt(
    session: Session,
    attempt: Attempt,
    *,
    status_code: int | None,
    latency_ms: float,
    error: str | None,
    delivered: bool,
    retry_in: float | None,
) -> None:
    """Log the attempt; the delivery is delivered (the caller's verdict on the answer), due
    again in ``retry_in`` seconds, or failed for good (``retry_in`` is ``None``)."""
    now = utcnow()
    session.add(
        WebhookAttempt(
            delivery_id=attempt.delivery_id,
            attempted_at=now,
            status_code=status_code,
            latency_ms=round(latency_ms),
            error=error,
        )
    )
    changes: dict[str, Any] = {"attempts": WebhookDelivery.attempts + 1}
    if delivered:
        changes |= {"status": DELIVERED, "delivered_at": now, "next_attempt_at": None}
    elif retry_in is None:
        changes |= {"status": FAILED, "next_attempt_at": None}
    else:
        changes["next_attempt_at"] = now + timedelta(seconds=retry_in)
    session.execute(
        sa.update(WebhookDelivery).where(WebhookDelivery.id == attempt.delivery_id).values(changes)
    )


def redeliver(
    session: Session, delivery_id: uuid.UUID, tenant: str, endpoint_id: uuid.UUID
) -> bool:
    """Make a tenant's delivery to ``endpoint_id`` pending and due now, whatever became of
    it; ``False``: there is no such delivery."""
    d = WebhookDelivery
    done = session.execute(
        sa.update(d)
        .where(d.id == delivery_id, d.tenant == tenant, d.endpoint_id == endpoint_id)
        .values(status=PENDING, next_attempt_at=utcnow())
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def endpoints(session: Session, tenant: str) -> Sequence[WebhookEndpoint]:
    return session.scalars(
        sa.select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant == tenant)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    ).all()


def endpoint(session: Session, endpoint_id: uuid.UUID, tenant: str) -> WebhookEndpoint | None:
    found = session.get(WebhookEndpoint, endpoint_id)
    return found if found is not None and found.tenant == tenant else None


def deliveries(
    session: Session, endpoint_id: uuid.UUID, *, limit: int
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """An endpoint's latest deliveries, newest first, each with its attempts in order."""
    found = session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(limit)
    ).all()
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d in found}
    for attempt in session.scalars(
        sa.select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(attempts))
        .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
    ):
        attempts[attempt.delivery_id].append(attempt)
    return [(delivery, attempts[delivery.id]) for delivery in found]
