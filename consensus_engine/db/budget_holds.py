"""Tenant budget holds (:class:`~consensus_engine.domain.budgets.Hold`) in the database.

A tenant's spend is what ``llm_calls`` records plus the holds not yet recorded: a hold is
written before its call, set to what the call really cost when it ends, and deleted by
the transaction that records the call (:func:`consensus_engine.db.writes.record_llm_calls`),
so a call is counted once, as a hold or as a row, never both and never neither. A hold
whose call is never recorded (its worker died) counts until it expires.

Reserving is one transaction per call: lock the tenant, sum its spend and holds, decide,
insert. PostgreSQL serialises a tenant's reservations with a transaction-level advisory
lock; SQLite (the demo) with the write lock the hold's insert takes before the sum.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import reads
from consensus_engine.db.models import BudgetHold
from consensus_engine.db.types import utcnow
from consensus_engine.domain.budgets import Budget, Hold, Spend, Standing, crossed_by

_LOCK_NAMESPACE = "llm_budget:"


class DatabaseHolds:
    """A :class:`~consensus_engine.pipeline.budget_gate.HoldStore` in ``llm_budget_holds``;
    thread-safe."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def reserve(self, hold: Hold, budget: Budget, at: datetime) -> Standing | None:
        """Keep ``hold`` unless it would take the tenant past a limit of ``budget`` in the
        periods that contain ``at``; that limit, as it stands, when it would."""
        with self._sessions() as session:
            _lock(session, hold.tenant)
            session.execute(
                sa.delete(BudgetHold).where(
                    BudgetHold.tenant == hold.tenant, BudgetHold.expires_at <= utcnow()
                )
            )
            session.add(
                BudgetHold(
                    id=hold.call_id,
                    tenant=hold.tenant,
                    usd=hold.usd,
                    tokens=hold.tokens,
                    expires_at=hold.expires_at,
                )
            )
            session.flush()  # on SQLite, this write takes the lock before the sum
            spend = _with_holds(session, reads.spend(session, hold.tenant, at), hold)
            crossed = crossed_by(budget, spend, hold.usd, hold.tokens)
            if crossed is None:
                session.commit()
            else:
                session.rollback()
            return crossed

    def settle(self, call_id: uuid.UUID, usd: Decimal, tokens: int) -> None:
        """The call ended having cost ``usd`` and ``tokens``: hold that until it is recorded."""
        with self._sessions.begin() as session:
            session.execute(
                sa.update(BudgetHold).where(BudgetHold.id == call_id).values(usd=usd, tokens=tokens)
            )


def release(session: Session, call_ids: list[uuid.UUID]) -> None:
    """Drop the holds of calls being recorded, in the transaction that records them."""
    if call_ids:
        session.execute(sa.delete(BudgetHold).where(BudgetHold.id.in_(call_ids)))


def _lock(session: Session, tenant: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        key = sa.func.hashtextextended(_LOCK_NAMESPACE + tenant, 0)
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def _with_holds(session: Session, spend: Spend, hold: Hold) -> Spend:
    """``spend`` and the tenant's live holds but ``hold`` itself."""
    usd, tokens = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(BudgetHold.usd), 0),
            sa.func.coalesce(sa.func.sum(BudgetHold.tokens), 0),
        ).where(
            BudgetHold.tenant == hold.tenant,
            BudgetHold.expires_at > utcnow(),
            BudgetHold.id != hold.call_id,
        )
    ).one()
    return spend.plus(Decimal(usd), int(tokens))
