"""Initial schema: runs, their steps, proposals, reviews, decisions and LLM calls.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Written out in full rather than importing the models, so that this revision
keeps meaning the same thing when the models change. Enumerations are VARCHAR
columns guarded by CHECK constraints (no native ENUM types), which keeps the
schema identical on PostgreSQL and SQLite and makes adding a value a plain
constraint swap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENUM_LENGTH = 20
RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
RUN_TYPES = ("initial", "revision")
PRIORITIES = ("normal", "high")
DECISIONS = ("approve", "revise", "reject")
STEP_STATUSES = ("pending", "running", "completed", "failed", "skipped")
PROPOSAL_SOURCES = ("expanded", "edited", "revised")
LLM_OUTCOMES = (
    "success",
    "repaired",
    "invalid_output",
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "auth_error",
    "bad_request",
    "error",
)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamp(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if now else None,
    )


def _counter(name: str, *, start: int = 0) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default=str(start))


def _money(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Numeric(12, 6), nullable=False, server_default="0")


def _run_fk(table: str, column: str, *, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["runs.id"], name=op.f(f"fk_{table}_{column}_runs"), ondelete=ondelete
    )


def _one_of(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=op.f(f"ck_{table}_{column}"))


def _range(table: str, column: str, low: str, high: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        f"{column} {low} AND {column} {high}", name=op.f(f"ck_{table}_{column}_range")
    )


def _non_negative(table: str, *columns: str) -> list[sa.CheckConstraint]:
    return [
        sa.CheckConstraint(f"{column} >= 0", name=op.f(f"ck_{table}_{column}_non_negative"))
        for column in columns
    ]


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=False, server_default="default"),
        sa.Column("status", sa.String(ENUM_LENGTH), nullable=False),
        sa.Column("run_type", sa.String(ENUM_LENGTH), nullable=False),
        sa.Column("priority", sa.String(ENUM_LENGTH), nullable=False),
        sa.Column("parent_run_id", sa.Uuid(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("idea", sa.Text(), nullable=False),
        sa.Column("extra_context", _json(), nullable=True),
        sa.Column("edited_proposal", _json(), nullable=True),
        sa.Column("edit_notes", sa.Text(), nullable=True),
        sa.Column("expand_model", sa.String(200), nullable=False),
        sa.Column("expand_temperature", sa.Double(), nullable=True),
        sa.Column("review_model", sa.String(200), nullable=False),
        sa.Column("review_temperature", sa.Double(), nullable=True),
        sa.Column("personas", _json(), nullable=False),
        sa.Column("schema_version", sa.String(40), nullable=False),
        sa.Column("prompt_set_version", sa.String(40), nullable=False),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("overall_score", sa.Double(), nullable=True),
        sa.Column("decision", sa.String(ENUM_LENGTH), nullable=True),
        _counter("input_tokens"),
        _counter("output_tokens"),
        _money("cost_usd"),
        _counter("attempts"),
        sa.Column("error_code", sa.String(100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("updated_at", nullable=False, now=True),
        _timestamp("queued_at"),
        _timestamp("started_at"),
        _timestamp("completed_at"),
        _timestamp("last_enqueued_at"),
        _timestamp("deadline_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        _run_fk("runs", "parent_run_id", ondelete="SET NULL"),
        sa.UniqueConstraint(
            "tenant", "idempotency_key", name=op.f("uq_runs_tenant_idempotency_key")
        ),
        _one_of("runs", "status", RUN_STATUSES),
        _one_of("runs", "run_type", RUN_TYPES),
        _one_of("runs", "priority", PRIORITIES),
        _one_of("runs", "decision", DECISIONS),
        _range("runs", "expand_temperature", ">= 0", "<= 2"),
        _range("runs", "review_temperature", ">= 0", "<= 2"),
        _range("runs", "overall_score", ">= 0", "<= 1"),
        *_non_negative("runs", "input_tokens", "output_tokens", "cost_usd", "attempts"),
    )
    op.create_index(op.f("ix_runs_tenant_created_at_id"), "runs", ["tenant", "created_at", "id"])
    op.create_index(op.f("ix_runs_status"), "runs", ["status"])
    op.create_index(op.f("ix_runs_run_type"), "runs", ["run_type"])
    op.create_index(op.f("ix_runs_parent_run_id"), "runs", ["parent_run_id"])
    op.create_index(op.f("ix_runs_decision"), "runs", ["decision"])
    op.create_index(op.f("ix_runs_overall_score"), "runs", ["overall_score"])
    op.create_index(
        op.f("ix_runs_status_last_enqueued_at"), "runs", ["status", "last_enqueued_at"]
    )

    op.create_table(
        "step_progress",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("step_name", sa.String(120), nullable=False),
        sa.Column("step_order", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(ENUM_LENGTH), nullable=False),
        _counter("attempts"),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        _timestamp("started_at"),
        _timestamp("completed_at"),
        _timestamp("updated_at", nullable=False, now=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_progress")),
        _run_fk("step_progress", "run_id", ondelete="CASCADE"),
        sa.UniqueConstraint(
            "run_id", "step_name", name=op.f("uq_step_progress_run_id_step_name")
        ),
        _one_of("step_progress", "status", STEP_STATUSES),
        *_non_negative("step_progress", "step_order", "attempts"),
    )
    op.create_index(
        op.f("ix_step_progress_status_updated_at"), "step_progress", ["status", "updated_at"]
    )

    op.create_table(
        "proposal_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("proposal", _json(), nullable=False),
        sa.Column("diff", _json(), nullable=True),
        sa.Column("edit_notes", sa.Text(), nullable=True),
        sa.Column("source", sa.String(ENUM_LENGTH), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposal_versions")),
        _run_fk("proposal_versions", "run_id", ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", name=op.f("uq_proposal_versions_run_id")),
        _one_of("proposal_versions", "source", PROPOSAL_SOURCES),
    )

    op.create_table(
        "persona_reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("persona_id", sa.String(100), nullable=False),
        sa.Column("persona_name", sa.String(200), nullable=False),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.Column("review", _json(), nullable=False),
        sa.Column("confidence_score", sa.Double(), nullable=False),
        sa.Column("blocking_issues_present", sa.Boolean(), nullable=False),
        sa.Column("security_concerns_present", sa.Boolean(), nullable=False),
        sa.Column("reused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("source_run_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("temperature", sa.Double(), nullable=True),
        sa.Column("prompt_set_version", sa.String(40), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persona_reviews")),
        _run_fk("persona_reviews", "run_id", ondelete="CASCADE"),
        _run_fk("persona_reviews", "source_run_id", ondelete="SET NULL"),
        sa.UniqueConstraint(
            "run_id", "persona_id", name=op.f("uq_persona_reviews_run_id_persona_id")
        ),
        _range("persona_reviews", "weight", "> 0", "<= 1"),
        _range("persona_reviews", "confidence_score", ">= 0", "<= 1"),
        _range("persona_reviews", "temperature", ">= 0", "<= 2"),
    )
    op.create_index(
        op.f("ix_persona_reviews_source_run_id"), "persona_reviews", ["source_run_id"]
    )

    op.create_table(
        "decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("decision", sa.String(ENUM_LENGTH), nullable=False),
        sa.Column("overall_score", sa.Double(), nullable=False),
        sa.Column("decision_json", _json(), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        _run_fk("decisions", "run_id", ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", name=op.f("uq_decisions_run_id")),
        _one_of("decisions", "decision", DECISIONS),
        _range("decisions", "overall_score", ">= 0", "<= 1"),
    )
    op.create_index(op.f("ix_decisions_overall_score"), "decisions", ["overall_score"])

    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("step", sa.String(120), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        _counter("attempt", start=1),
        _counter("input_tokens"),
        _counter("output_tokens"),
        _money("cost_usd"),
        _counter("latency_ms"),
        sa.Column("outcome", sa.String(ENUM_LENGTH), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_calls")),
        _run_fk("llm_calls", "run_id", ondelete="CASCADE"),
        _one_of("llm_calls", "outcome", LLM_OUTCOMES),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_llm_calls_attempt_positive")),
        *_non_negative("llm_calls", "input_tokens", "output_tokens", "cost_usd", "latency_ms"),
    )
    op.create_index(op.f("ix_llm_calls_run_id_step"), "llm_calls", ["run_id", "step"])


def downgrade() -> None:
    # Children first; dropping a table drops its indexes and constraints with it.
    for table in (
        "llm_calls",
        "decisions",
        "persona_reviews",
        "proposal_versions",
        "step_progress",
        "runs",
    ):
        op.drop_table(table)
