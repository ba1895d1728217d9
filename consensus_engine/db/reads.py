"""Reading runs: one run (plain or with everything its detail shows), its proposal and
reviews, pages of a tenant's runs, progress, usage and counts.

Every function takes the caller's session and never commits. Queries on behalf of a
client are scoped to its tenant, so one tenant's key can never read another's runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from consensus_engine.db import documents
from consensus_engine.db.models import (
    DecisionRecord,
    LlmCall,
    ProposalVersion,
    Run,
    StepProgress,
)
from consensus_engine.db.models import PersonaReview as ReviewRow
from consensus_engine.domain.budgets import Spend, day_start, month_start
from consensus_engine.domain.runs import IN_FLIGHT, RunStatus, RunType, StepStatus
from consensus_engine.domain.schemas import Decision, DecisionLabel, ExpandedProposal


class InvalidCursor(ValueError):
    """A pagination cursor this server did not produce (or produced for another sort)."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the sort key (``created_at`` DESC, ``id`` DESC) of its last run."""

    created_at: datetime
    run_id: uuid.UUID

    def encode(self) -> str:
        """Opaque to clients: URL-safe base64 of the JSON key, without padding."""
        raw = json.dumps([self.created_at.isoformat(), str(self.run_id)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            created, run_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            moment = datetime.fromisoformat(created)
            if moment.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(moment.astimezone(UTC), uuid.UUID(run_id))
        except (ValueError, TypeError, OverflowError, binascii.Error) as error:
            raise InvalidCursor("the cursor is not one this server returned") from error


@dataclass(frozen=True)
class RunFilters:
    """The list filters; ``None`` means no condition. Both date bounds are inclusive."""

    status: RunStatus | None = None
    run_type: RunType | None = None
    parent_run_id: uuid.UUID | None = None
    decision: DecisionLabel | None = None
    min_confidence: float | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    text: str | None = None
    """Found in the idea or the proposal's title, ignoring case (taken literally: ``%`` and
    ``_`` match themselves)."""


@dataclass(frozen=True)
class RunPage:
    rows: Sequence[sa.Row[*tuple[Any, ...]]]
    """A run's list columns by name, as the API's list item has them."""
    next_cursor: Cursor | None
    """Set when more runs follow; pass its encoding to get the next page."""


def list_runs(
    session: Session,
    *,
    tenant: str,
    filters: RunFilters,
    limit: int,
    after: Cursor | None = None,
    rendered: bool = False,
) -> RunPage:
    """A page of the tenant's runs, newest first, continuing after ``after``.

    Keyset pagination on (created_at, id): stable while runs are added, and no
    ``count(*)`` or ``OFFSET`` scan, whatever the page number. ``rendered`` (PostgreSQL
    only) gives each row its list item as JSON text, ``document``, instead of columns.
    """
    columns = _RENDERED_COLUMNS if rendered else _list_columns()
    query = (
        sa.select(*columns)
        .outerjoin(ProposalVersion, ProposalVersion.run_id == Run.id)
        .where(Run.tenant == tenant, *_conditions(filters))
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(
            sa.or_(
                Run.created_at < after.created_at,
                sa.and_(Run.created_at == after.created_at, Run.id < after.run_id),
            )
        )
    rows = session.execute(query).all()
    if len(rows) <= limit:
        return RunPage(rows, None)
    last = rows[limit - 1]
    return RunPage(rows[:limit], Cursor(last.created_at, last.run_id))


_RENDERED_COLUMNS = (
    documents.list_item().label("document"),
    Run.created_at,
    Run.id.label("run_id"),
)


def _list_columns() -> tuple[Any, ...]:
    """The list item's fields, by name."""
    title = ProposalVersion.proposal["title"].as_string().label("proposal_title")
    summary = ProposalVersion.proposal["summary"].as_string().label("proposal_summary")
    return (
        Run.id.label("run_id"),
        Run.status,
        Run.run_type,
        Run.priority,
        Run.parent_run_id,
        Run.created_at,
        Run.queued_at,
        Run.started_at,
        Run.completed_at,
        Run.decision,
        Run.overall_score,
        title,
        summary,
        documents.idea_preview().label("idea_preview"),
    )


def _conditions(filters: RunFilters) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.status is not None:
        conditions.append(Run.status == filters.status)
    if filters.run_type is not None:
        conditions.append(Run.run_type == filters.run_type)
    if filters.parent_run_id is not None:
        conditions.append(Run.parent_run_id == filters.parent_run_id)
    if filters.decision is not None:
        conditions.append(Run.decision == filters.decision)
    if filters.min_confidence is not None:
        conditions.append(Run.overall_score >= filters.min_confidence)
    if filters.created_after is not None:
        conditions.append(Run.created_at >= filters.created_after)
    if filters.created_before is not None:
        conditions.append(Run.created_at <= filters.created_before)
    if filters.text is not None:
        title = ProposalVersion.proposal["title"].as_string()
        conditions.append(
            sa.or_(
                Run.idea.icontains(filters.text, autoescape=True),
                title.icontains(filters.text, autoescape=True),
            )
        )
    return conditions


def get_run(
    session: Session, run_id: uuid.UUID, *, tenant: str | None, detailed: bool = False
) -> Run | None:
    """The run, if it belongs to ``tenant`` (``None``: any tenant, for the pipeline).

    ``detailed`` loads everything the detail view shows up front: steps, reviews,
    proposal and decision.
    """
    query = sa.select(Run).where(Run.id == run_id)
    if tenant is not None:
        query = query.where(Run.tenant == tenant)
    if detailed:
        query = query.options(
            selectinload(Run.steps),
            selectinload(Run.reviews),
            selectinload(Run.proposal),
            selectinload(Run.decision_record),
            selectinload(Run.chair_report),
        )
    return session.scalar(query)


def load_proposal(session: Session, run_id: uuid.UUID) -> ExpandedProposal | None:
    row = session.scalar(sa.select(ProposalVersion).where(ProposalVersion.run_id == run_id))
    return None if row is None else ExpandedProposal.model_validate(row.proposal)


def load_decision(session: Session, run_id: uuid.UUID) -> Decision | None:
    row = session.scalar(sa.select(DecisionRecord).where(DecisionRecord.run_id == run_id))
    return None if row is None else Decision.model_validate(row.decision_json)


def load_reviews(session: Session, run_id: uuid.UUID) -> dict[str, ReviewRow]:
    """The run's reviews by persona id, fresh and reused alike."""
    rows = session.scalars(sa.select(ReviewRow).where(ReviewRow.run_id == run_id))
    return {row.persona_id: row for row in rows}


@dataclass(frozen=True)
class StepUsage:
    """LLM usage of one step, summed over its attempts (failed ones too: they were billed)."""

    step: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


def usage_by_step(session: Session, run_id: uuid.UUID) -> list[StepUsage]:
    rows = session.execute(
        sa.select(
            LlmCall.step,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(LlmCall.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(LlmCall.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(LlmCall.cost_usd), 0),
        )
        .where(LlmCall.run_id == run_id)
        .group_by(LlmCall.step)
        .order_by(LlmCall.step)
    ).all()
    return [
        StepUsage(step, int(calls), int(inputs), int(outputs), Decimal(cost))
        for step, calls, inputs, outputs, cost in rows
    ]


def count_in_flight(session: Session, *, tenant: str) -> int:
    """The tenant's queued and running runs, for the per-tenant cap."""
    count = session.scalar(
        sa.select(sa.func.count())
        .select_from(Run)
        .where(Run.tenant == tenant, Run.status.in_(IN_FLIGHT))
    )
    return int(count or 0)


def find_by_idempotency_key(session: Session, *, tenant: str, key: str) -> Run | None:
    return session.scalar(sa.select(Run).where(Run.tenant == tenant, Run.idempotency_key == key))


@dataclass(frozen=True)
class StepState:
    step_name: str
    status: StepStatus
    attempts: int
    error: str | None


@dataclass(frozen=True)
class RunProgress:
    """Just what a progress stream compares between polls: cheap to read often."""

    status: RunStatus
    error_code: str | None
    decision: DecisionLabel | None
    overall_score: float | None
    steps: tuple[StepState, ...]


def run_progress(session: Session, run_id: uuid.UUID, *, tenant: str) -> RunProgress | None:
    head = session.execute(
        sa.select(Run.status, Run.error_code, Run.decision, Run.overall_score).where(
            Run.id == run_id, Run.tenant == tenant
        )
    ).one_or_none()
    if head is None:
        return None
    steps = session.execute(
        sa.select(
            StepProgress.step_name,
            StepProgress.status,
            StepProgress.attempts,
            StepProgress.error,
        )
        .where(StepProgress.run_id == run_id)
        .order_by(StepProgress.step_order)
    ).all()
    status, error_code, decision, score = head
    return RunProgress(
        status=status,
        error_code=error_code,
        decision=decision,
        overall_score=score,
        steps=tuple(StepState(*row) for row in steps),
    )


def run_counts(session: Session) -> dict[str, int]:
    """Runs in each status, for the ``consensus_runs`` gauge."""
    rows = session.execute(sa.select(Run.status, sa.func.count()).group_by(Run.status))
    return {str(status): int(count) for status, count in rows}


# -- spend ------------------------------------------------------------------------------------


def spend(session: Session, tenant: str, at: datetime) -> Spend:
    """What ``tenant`` spent on LLM calls in the UTC day and month that contain ``at``."""
    today, month = day_start(at), month_start(at)
    tokens = LlmCall.input_tokens + LlmCall.output_tokens
    in_day = LlmCall.created_at >= today
    row = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((in_day, LlmCall.cost_usd))), 0),
            sa.func.coalesce(sa.func.sum(LlmCall.cost_usd), 0),
            sa.func.coalesce(sa.func.sum(sa.case((in_day, tokens))), 0),
        ).where(LlmCall.tenant == tenant, LlmCall.created_at >= month, LlmCall.created_at <= at)
    ).one()
    return Spend(
        at=at,
        usd_today=Decimal(row[0]),
        usd_this_month=Decimal(row[1]),
        tokens_today=int(row[2]),
    )


@dataclass(frozen=True)
class DailyUsage:
    day: str
    """The UTC day, ``YYYY-MM-DD``."""
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


def daily_usage(session: Session, tenant: str, since: datetime) -> list[DailyUsage]:
    """``tenant``'s LLM calls since ``since``, summed by UTC day and model, newest first."""
    day = _utc_day(session)
    rows = session.execute(
        sa.select(
            day,
            LlmCall.model,
            sa.func.count(),
            sa.func.sum(LlmCall.input_tokens),
            sa.func.sum(LlmCall.output_tokens),
            sa.func.sum(LlmCall.cost_usd),
        )
        .where(LlmCall.tenant == tenant, LlmCall.created_at >= since)
        .group_by(day, LlmCall.model)
        .order_by(day.desc(), LlmCall.model)
    )
    return [
        DailyUsage(str(d), model, int(n), int(tokens_in), int(tokens_out), Decimal(cost))
        for d, model, n, tokens_in, tokens_out, cost in rows
    ]


def _utc_day(session: Session) -> sa.ColumnElement[str]:
    """A call's UTC day as ``YYYY-MM-DD``, in the dialect at hand."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        utc = sa.func.timezone("UTC", LlmCall.created_at)
        return sa.func.to_char(utc, "YYYY-MM-DD")
    return sa.func.strftime("%Y-%m-%d", LlmCall.created_at)
