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
from enum import StrEnum
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


SEARCH_CONFIG = "english"
"""The text search configuration of ``runs.search_vector`` (migration 0008 builds it with
the same one). English: the prompts are English and so, mostly, are the proposals the
model writes; its stemming lets ``pump`` find ``pumps`` and ``booking`` find ``book``, and
its stop words (``the``, ``and``) keep the index small. A word of another language still
matches itself, stemmed the same way on both sides."""


class RunSort(StrEnum):
    """What a page of runs is ordered by."""

    CREATED = "created"
    SCORE = "score"
    """The overall score; runs without one come last."""
    DECISION = "decision"
    """Approve, revise, reject (descending; the reverse ascending); undecided runs last."""


class Direction(StrEnum):
    DESC = "desc"
    ASC = "asc"


_UNSCORED = {Direction.DESC: -1.0, Direction.ASC: 2.0}
"""A score no run has, on the far side of 0..1: unscored runs sort last either way."""
_DECISION_RANK = {DecisionLabel.APPROVE: 3, DecisionLabel.REVISE: 2, DecisionLabel.REJECT: 1}
_UNDECIDED = {Direction.DESC: 0, Direction.ASC: 4}
_SCORE_KEYS = (min(_UNSCORED.values()), max(_UNSCORED.values()))
"""The range of a score sort key: the scores 0..1 and both stand-ins."""
_DECISION_KEYS = (min(_UNDECIDED.values()), max(_UNDECIDED.values()))
"""The range of a decision sort key: the ranks and both stand-ins."""


@dataclass(frozen=True)
class Ordering:
    """A page's order: ``sort`` in ``direction``, then the newest first among equals (for
    ``created``: the creation time itself in ``direction``), then the id, so that every
    run has one place and keyset pages neither overlap nor skip."""

    sort: RunSort = RunSort.CREATED
    direction: Direction = Direction.DESC

    def key(self) -> sa.ColumnElement[Any] | None:
        """The sort key as a value every run has (``None`` for ``created``)."""
        if self.sort is RunSort.SCORE:
            return sa.func.coalesce(Run.overall_score, sa.literal(_UNSCORED[self.direction]))
        if self.sort is RunSort.DECISION:
            ranks = [(Run.decision == label, rank) for label, rank in _DECISION_RANK.items()]
            return sa.case(*ranks, else_=sa.literal(_UNDECIDED[self.direction]))
        return None

    def order_by(self) -> list[sa.ColumnElement[Any]]:
        key = self.key()
        if key is None:
            if self.direction is Direction.ASC:
                return [Run.created_at.asc(), Run.id.asc()]
            return [Run.created_at.desc(), Run.id.desc()]
        ordered = key.desc() if self.direction is Direction.DESC else key.asc()
        return [ordered, Run.created_at.desc(), Run.id.desc()]

    def after(self, cursor: Cursor) -> sa.ColumnElement[bool]:
        """The runs that come after ``cursor``'s run in this order."""
        key = self.key()
        if key is None:
            return _past(cursor, newer=self.direction is Direction.ASC)
        beyond = key < cursor.key if self.direction is Direction.DESC else key > cursor.key
        return sa.or_(beyond, sa.and_(key == cursor.key, _past(cursor, newer=False)))

    def read_key(self, value: object) -> float | int | None:
        """A cursor's sort key, checked: a key of the wrong kind was not ours."""
        match self.sort, value:
            case RunSort.CREATED, None:
                return None
            case RunSort.SCORE, float() | int() if not isinstance(value, bool):
                if _SCORE_KEYS[0] <= value <= _SCORE_KEYS[1]:
                    return float(value)
            case RunSort.DECISION, int() if not isinstance(value, bool):
                if _DECISION_KEYS[0] <= value <= _DECISION_KEYS[1]:
                    return value
        raise ValueError("a sort key of the wrong kind")


def _past(cursor: Cursor, *, newer: bool) -> sa.ColumnElement[bool]:
    """Runs created after (``newer``) or before the cursor's, the id breaking a tie."""
    if newer:
        return sa.or_(
            Run.created_at > cursor.created_at,
            sa.and_(Run.created_at == cursor.created_at, Run.id > cursor.run_id),
        )
    return sa.or_(
        Run.created_at < cursor.created_at,
        sa.and_(Run.created_at == cursor.created_at, Run.id < cursor.run_id),
    )


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the order it was read in and its last run's place in it."""

    created_at: datetime
    run_id: uuid.UUID
    ordering: Ordering = Ordering()
    key: float | int | None = None
    """The last run's sort key (``Ordering.key``); ``None`` for ``created``."""

    def encode(self) -> str:
        """Opaque to clients: URL-safe base64 of the JSON key, without padding."""
        order = self.ordering
        fields = [order.sort, order.direction, self.key, self.created_at.isoformat()]
        raw = json.dumps([*fields, str(self.run_id)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, ordering: Ordering | None = None) -> Cursor:
        """The cursor ``token`` encodes; refused when it was not read in ``ordering``.

        A cursor of the first version (``[created_at, id]``) is one of the default order.
        """
        try:
            padded = token + "=" * (-len(token) % 4)
            fields = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            if not isinstance(fields, list):
                raise ValueError("not a list")
            if len(fields) == 2:
                fields = [RunSort.CREATED, Direction.DESC, None, *fields]
            sort, direction, key, created, run_id = fields
            order = Ordering(RunSort(sort), Direction(direction))
            moment = datetime.fromisoformat(created)
            if moment.tzinfo is None:
                raise ValueError("naive timestamp")
            cursor = cls(moment.astimezone(UTC), uuid.UUID(run_id), order, order.read_key(key))
        except (ValueError, TypeError, OverflowError, binascii.Error) as error:
            raise InvalidCursor("the cursor is not one this server returned") from error
        if ordering is not None and ordering != order:
            raise InvalidCursor(
                f"the cursor continues a list in sort={order.sort}&direction="
                f"{order.direction}; ask for that order, or start again without a cursor"
            )
        return cursor


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
    """Words found in the idea or the proposal (any of its text: title, summary, body).
    PostgreSQL: full-text search (``websearch_to_tsquery``: every word, stemmed;
    ``"a phrase"``, ``or``, ``-without``). SQLite: every word as a substring, ignoring
    case (taken literally: ``%`` and ``_`` match themselves)."""


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
    ordering: Ordering = Ordering(),
) -> RunPage:
    """A page of the tenant's runs in ``ordering`` (newest first by default), continuing
    after ``after``, which must have been read in the same ordering.

    Keyset pagination on (sort key, created_at, id): stable while runs are added, and no
    ``count(*)`` or ``OFFSET`` scan, whatever the page number. ``rendered`` (PostgreSQL
    only) gives each row its list item as JSON text, ``document``, instead of columns.
    """
    if after is not None and after.ordering != ordering:
        raise InvalidCursor("the cursor continues a list in another order")
    columns = _RENDERED_COLUMNS if rendered else _list_columns()
    key = ordering.key()
    if key is not None:
        columns = (*columns, key.label("sort_key"))
    dialect = session.get_bind().dialect.name
    query = (
        sa.select(*columns)
        .outerjoin(ProposalVersion, ProposalVersion.run_id == Run.id)
        .where(Run.tenant == tenant, *_conditions(filters, dialect))
        .order_by(*ordering.order_by())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(ordering.after(after))
    rows = session.execute(query).all()
    if len(rows) <= limit:
        return RunPage(rows, None)
    last = rows[limit - 1]
    cursor = Cursor(last.created_at, last.run_id, ordering, getattr(last, "sort_key", None))
    return RunPage(rows[:limit], cursor)


_RENDERED_COLUMNS: tuple[Any, ...] = (
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


def _conditions(filters: RunFilters, dialect: str) -> list[sa.ColumnElement[bool]]:
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
        conditions.append(text_search(filters.text, dialect))
    return conditions


def text_search(text: str, dialect: str) -> sa.ColumnElement[bool]:
    """Runs whose idea and proposal hold ``text`` (see ``RunFilters.text``)."""
    if dialect == "postgresql":
        config: sa.ColumnElement[Any] = sa.literal_column(f"'{SEARCH_CONFIG}'::regconfig")
        query = sa.func.websearch_to_tsquery(config, text)
        return Run.search_vector.bool_op("@@")(query)
    return sa.and_(*(_word_found(word) for word in text.split()))


def _word_found(word: str) -> sa.ColumnElement[bool]:
    """``word`` in the idea or in a string of the proposal (not its keys), ignoring case."""
    strings = sa.func.json_tree(ProposalVersion.proposal).table_valued("value", "type")
    in_proposal = (
        sa.select(sa.literal(1))
        .select_from(strings)
        .where(strings.c.type == "text", strings.c.value.icontains(word, autoescape=True))
        .exists()
    )
    return sa.or_(Run.idea.icontains(word, autoescape=True), in_proposal)


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
