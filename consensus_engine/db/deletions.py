"""Deleting runs: one rule for a client's ``DELETE /v1/runs/{id}`` and for the sweeper's
retention period.

A run goes with one statement and the foreign keys do the rest. Deleted with it (ON DELETE
CASCADE): its steps, proposal, reviews, decision, chair report and webhook deliveries.
Kept (ON DELETE SET NULL): its revisions, which lose their parent link; reviews other runs
reused from it, which lose their source; and its LLM calls, which lose their run but keep
their tenant and cost, because budgets and usage sum them and a deleted run was still
billed.

Only a run that ended may go, and only while no revision of it is under way: a revision
reads its parent's proposal and reviews as it runs, and would fail without them.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from consensus_engine.db.models import Run
from consensus_engine.domain.runs import ENDED, IN_FLIGHT, RunStatus


@dataclass(frozen=True)
class Deleted:
    """A run that was deleted, for the audit line."""

    run_id: uuid.UUID
    tenant: str
    status: RunStatus


def _revision_under_way(parent_id: Any) -> sa.Exists:
    """Whether a revision of the parent is queued or running; ``parent_id`` is a run's id,
    or ``Run.id`` to ask of each run a query reads."""
    child = aliased(Run)
    return sa.exists().where(child.parent_run_id == parent_id, child.status.in_(IN_FLIGHT))


def kept_because(session: Session, run: Run) -> str | None:
    """Why ``run`` cannot be deleted now, or ``None`` when it can."""
    if not run.status.is_terminal:
        return f"the run is {run.status.value}: cancel it first, then delete it"
    if session.scalar(sa.select(_revision_under_way(run.id))):
        return "a revision of this run is under way and reads it; delete it once that ended"
    return None


def delete(session: Session, run_ids: Collection[uuid.UUID]) -> int:
    """Delete the runs (the caller checked them, holding their locks); how many went."""
    if not run_ids:
        return 0
    statement = sa.delete(Run).where(Run.id.in_(run_ids))
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return int(getattr(result, "rowcount", 0) or 0)


def lock_expired(session: Session, *, ended_before: datetime, limit: int) -> Sequence[Deleted]:
    """Up to ``limit`` runs that ended before ``ended_before`` and may be deleted, oldest
    first, locked; rows another sweeper holds are skipped."""
    rows = session.execute(
        sa.select(Run.id, Run.tenant, Run.status)
        .where(
            Run.status.in_(ENDED),
            Run.completed_at < ended_before,
            ~_revision_under_way(Run.id),
        )
        .order_by(Run.completed_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Run)
    )
    return [Deleted(run_id, tenant, status) for run_id, tenant, status in rows]
