"""The tables, as SQLAlchemy 2.0 typed models.

Every rule the data must obey is a constraint the database enforces (CHECKs,
UNIQUEs, foreign keys), so a bug in one writer cannot leave rows another
reader chokes on. ``alembic/versions`` must describe exactly these tables; a
test compares the two.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from consensus_engine.db.types import JSONType, UTCDateTime, str_enum, utcnow
from consensus_engine.domain.revisions import ProposalSource
from consensus_engine.domain.runs import Priority, RunStatus, RunType, StepStatus
from consensus_engine.domain.schemas import DecisionLabel
from consensus_engine.llm.records import LlmCallOutcome

NAMING_CONVENTION: dict[str, str] = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}
"""Deterministic constraint names, so migrations can drop or alter them by name."""

MONEY = sa.Numeric(12, 6)
"""US dollars: cents are too coarse for one LLM call."""

SEARCH_VECTOR = sa.Text().with_variant(TSVECTOR(), "postgresql")
"""A run's searchable text (``Run.search_vector``)."""


class Base(DeclarativeBase):
    """Shared metadata (with the naming convention) and the default column types."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        uuid.UUID: sa.Uuid(),
        datetime: UTCDateTime(),
        float: sa.Double(),
    }


def _check(sql: str, name: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=name)


def _non_negative(*columns: str) -> list[sa.CheckConstraint]:
    return [_check(f"{column} >= 0", f"{column}_non_negative") for column in columns]


def _unit_interval(column: str) -> sa.CheckConstraint:
    return _check(f"{column} >= 0 AND {column} <= 1", f"{column}_range")


def _temperature(column: str) -> sa.CheckConstraint:
    return _check(f"{column} >= 0 AND {column} <= 2", f"{column}_range")


def _created_at() -> Mapped[datetime]:
    return mapped_column(default=utcnow, server_default=sa.func.now())


def _updated_at() -> Mapped[datetime]:
    return mapped_column(default=utcnow, onupdate=utcnow, server_default=sa.func.now())


def _owner_fk(*, nullable: bool = False, unique: bool = False) -> Mapped[Any]:
    """The run a row belongs to; deleting the run deletes the row."""
    return mapped_column(
        sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=nullable, unique=unique
    )


class Run(Base):
    """One request to turn an idea (or an edited proposal) into a decision."""

    __tablename__ = "runs"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "idempotency_key"),
        sa.Index("ix_runs_tenant_created_at_id", "tenant", "created_at", "id"),
        sa.Index("ix_runs_status_last_enqueued_at", "status", "last_enqueued_at"),
        sa.Index("ix_runs_search_vector", "search_vector", postgresql_using="gin"),
        _temperature("expand_temperature"),
        _temperature("review_temperature"),
        _unit_interval("overall_score"),
        *_non_negative("input_tokens", "output_tokens", "cost_usd", "attempts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(sa.String(200), default="default", server_default="default")
    status: Mapped[RunStatus] = mapped_column(
        str_enum(RunStatus, name="status"), default=RunStatus.QUEUED, index=True
    )
    run_type: Mapped[RunType] = mapped_column(
        str_enum(RunType, name="run_type"), default=RunType.INITIAL, index=True
    )
    priority: Mapped[Priority] = mapped_column(
        str_enum(Priority, name="priority"), default=Priority.NORMAL
    )
    parent_run_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))

    idea: Mapped[str] = mapped_column(sa.Text)
    extra_context: Mapped[str | dict[str, Any] | None] = mapped_column(JSONType)
    edited_proposal: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    edit_notes: Mapped[str | None] = mapped_column(sa.Text)

    expand_model: Mapped[str] = mapped_column(sa.String(200))
    expand_temperature: Mapped[float | None]
    review_model: Mapped[str] = mapped_column(sa.String(200))
    review_temperature: Mapped[float | None]
    personas: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    schema_version: Mapped[str] = mapped_column(sa.String(40))
    prompt_set_version: Mapped[str] = mapped_column(sa.String(40))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    overall_score: Mapped[float | None] = mapped_column(index=True)
    decision: Mapped[DecisionLabel | None] = mapped_column(
        str_enum(DecisionLabel, name="decision"), index=True
    )

    input_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0), server_default="0")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    """How often the sweeper resumed the run: took over a dead worker's step, or sent a
    dead-lettered message again."""
    error_code: Mapped[str | None] = mapped_column(sa.String(100))
    error: Mapped[str | None] = mapped_column(sa.Text)

    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None] = mapped_column(index=True)
    last_enqueued_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    search_vector: Mapped[str | None] = mapped_column(SEARCH_VECTOR, deferred=True)
    """The idea and the proposal's text, for ``GET /v1/runs?q=``: on PostgreSQL a
    ``tsvector`` its triggers keep up to date (migration 0008); empty on SQLite, which
    searches the text itself. Never loaded with the run."""

    # A child outlives its parent (the FK sets NULL), so no delete cascade here.
    parent: Mapped[Run | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Run]] = relationship(back_populates="parent", passive_deletes=True)

    # Everything below belongs to this run alone and goes with it.
    steps: Mapped[list[StepProgress]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="StepProgress.step_order",
    )
    proposal: Mapped[ProposalVersion | None] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )
    reviews: Mapped[list[PersonaReview]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        foreign_keys="PersonaReview.run_id",
        order_by="PersonaReview.persona_id",
    )
    decision_record: Mapped[DecisionRecord | None] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )
    chair_report: Mapped[ChairReport | None] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )
    # Except its LLM calls: they outlive it (the FK sets NULL), so spend stays counted.
    llm_calls: Mapped[list[LlmCall]] = relationship(
        back_populates="run", passive_deletes=True, order_by="LlmCall.created_at"
    )


class StepProgress(Base):
    """One stage of a run (expand, one review per persona, aggregate) and who holds it."""

    __tablename__ = "step_progress"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "step_name"),
        sa.Index("ix_step_progress_status_updated_at", "status", "updated_at"),
        *_non_negative("step_order", "attempts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = _owner_fk()
    step_name: Mapped[str] = mapped_column(sa.String(120))
    step_order: Mapped[int]
    status: Mapped[StepStatus] = mapped_column(
        str_enum(StepStatus, name="status"), default=StepStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(sa.String(200))
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = _updated_at()
    error: Mapped[str | None] = mapped_column(sa.Text)
    step_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)

    run: Mapped[Run] = relationship(back_populates="steps")


class ProposalVersion(Base):
    """The proposal a run's personas reviewed: expanded, edited or revised."""

    __tablename__ = "proposal_versions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = _owner_fk(unique=True)
    proposal: Mapped[dict[str, Any]] = mapped_column(JSONType)
    diff: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    edit_notes: Mapped[str | None] = mapped_column(sa.Text)
    source: Mapped[ProposalSource] = mapped_column(str_enum(ProposalSource, name="source"))
    created_at: Mapped[datetime] = _created_at()

    run: Mapped[Run] = relationship(back_populates="proposal")


class PersonaReview(Base):
    """One persona's review of a run's proposal, fresh or reused from the parent run."""

    __tablename__ = "persona_reviews"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "persona_id"),
        _check("weight > 0 AND weight <= 1", "weight_range"),
        _unit_interval("confidence_score"),
        _temperature("temperature"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = _owner_fk()
    persona_id: Mapped[str] = mapped_column(sa.String(100))
    persona_name: Mapped[str] = mapped_column(sa.String(200))
    weight: Mapped[float]
    review: Mapped[dict[str, Any]] = mapped_column(JSONType)
    confidence_score: Mapped[float]
    blocking_issues_present: Mapped[bool]
    security_concerns_present: Mapped[bool]
    reused: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    source_run_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    model: Mapped[str] = mapped_column(sa.String(200))
    provider: Mapped[str] = mapped_column(sa.String(100), server_default="default")
    temperature: Mapped[float | None]
    prompt_set_version: Mapped[str] = mapped_column(sa.String(40))
    first_round_review: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """With two review rounds: the persona's first review, which ``review`` replaced after
    it read the others' (``None``: one round, or a reused review)."""
    created_at: Mapped[datetime] = _created_at()

    run: Mapped[Run] = relationship(back_populates="reviews", foreign_keys=[run_id])
    source_run: Mapped[Run | None] = relationship(foreign_keys=[source_run_id])


class DecisionRecord(Base):
    """The aggregated decision of a completed run (table ``decisions``)."""

    __tablename__ = "decisions"
    __table_args__ = (_unit_interval("overall_score"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = _owner_fk(unique=True)
    decision: Mapped[DecisionLabel] = mapped_column(str_enum(DecisionLabel, name="decision"))
    overall_score: Mapped[float] = mapped_column(index=True)
    decision_json: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = _created_at()

    run: Mapped[Run] = relationship(back_populates="decision_record")


class ChairReport(Base):
    """The chair's synthesis of a completed run's reviews: model-written, kept apart from
    the decision, which it never changes."""

    __tablename__ = "chair_reports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = _owner_fk(unique=True)
    model: Mapped[str] = mapped_column(sa.String(200))
    provider: Mapped[str] = mapped_column(sa.String(100))
    fallback: Mapped[bool]
    """The fallback model wrote it, the chair's own model having failed."""
    report: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = _created_at()

    run: Mapped[Run] = relationship(back_populates="chair_report")


class LlmCall(Base):
    """One request to an LLM: tokens, cost, latency and outcome, for budgets and metrics.

    ``run_id`` is empty for the synchronous endpoints, which have no run; ``tenant`` is
    always set, so spend adds up per tenant.
    """

    __tablename__ = "llm_calls"
    __table_args__ = (
        sa.Index("ix_llm_calls_run_id_step", "run_id", "step"),
        sa.Index("ix_llm_calls_tenant_created_at", "tenant", "created_at"),
        _check("attempt >= 1", "attempt_positive"),
        *_non_negative("input_tokens", "output_tokens", "cost_usd", "latency_ms"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"))
    """Emptied when the run is deleted: the call was made and billed, so it still counts."""
    tenant: Mapped[str] = mapped_column(sa.String(200), default="default", server_default="default")
    step: Mapped[str] = mapped_column(sa.String(120))
    model: Mapped[str] = mapped_column(sa.String(200))
    provider: Mapped[str] = mapped_column(sa.String(100), server_default="default")
    attempt: Mapped[int] = mapped_column(default=1, server_default="1")
    input_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0), server_default="0")
    latency_ms: Mapped[int] = mapped_column(default=0, server_default="0")
    outcome: Mapped[LlmCallOutcome] = mapped_column(str_enum(LlmCallOutcome, name="outcome"))
    created_at: Mapped[datetime] = _created_at()

    run: Mapped[Run | None] = relationship(back_populates="llm_calls")


class LlmRateLimit(Base):
    """One model's shared rate-limit buckets (``db/rate_limits.py``).

    Times are seconds since the epoch on the database's clock, the one clock every worker
    shares: when each bucket is full again, the turn after the last one given to a caller
    waiting for it, the time after the last one given to a caller sent away to come back,
    and until when the provider asked everyone to wait.
    """

    __tablename__ = "llm_rate_limits"

    model: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    requests_full_at: Mapped[float]
    tokens_full_at: Mapped[float]
    queue_until: Mapped[float]
    lobby_until: Mapped[float]
    paused_until: Mapped[float]
    last_wait: Mapped[float | None]
    """The answer to the last take, which its statement returns: empty, go; else seconds
    to wait."""


class BudgetHold(Base):
    """What one LLM call may cost at most, held against its tenant's budget until the call
    is recorded in ``llm_calls`` (``db/budget_holds.py``); the id is the call's."""

    __tablename__ = "llm_budget_holds"
    __table_args__ = (
        sa.Index("ix_llm_budget_holds_tenant_expires_at", "tenant", "expires_at"),
        *_non_negative("usd", "tokens"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(sa.String(200))
    usd: Mapped[Decimal] = mapped_column(MONEY)
    tokens: Mapped[int]
    expires_at: Mapped[datetime]


class WebhookEndpoint(Base):
    """Where a tenant wants to hear about its runs, and the secret deliveries are signed with."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (sa.Index("ix_webhook_endpoints_tenant_created_at", "tenant", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(sa.String(200))
    url: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str | None] = mapped_column(sa.Text)
    events: Mapped[list[str]] = mapped_column(JSONType)
    secret: Mapped[str] = mapped_column(sa.String(100))
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class WebhookDelivery(Base):
    """One event for one endpoint, delivered at least once; ``id`` is its ``webhook-id``."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("endpoint_id", "run_id", "event"),
        sa.Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_run_id", "run_id"),
        *_non_negative("attempts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    tenant: Mapped[str] = mapped_column(sa.String(200))
    run_id: Mapped[uuid.UUID | None] = _owner_fk(nullable=True)
    event: Mapped[str] = mapped_column(sa.String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    """pending (to be sent, at ``next_attempt_at``), delivered, or failed (retries spent)."""
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One HTTP attempt at a delivery: what the endpoint answered and how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (sa.Index("ix_webhook_attempts_delivery_id", "delivery_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    latency_ms: Mapped[int]
    error: Mapped[str | None] = mapped_column(sa.Text)


metadata = Base.metadata
"""What Alembic compares the migrations against."""
