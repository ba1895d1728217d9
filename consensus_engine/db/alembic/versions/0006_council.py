"""The council: the provider behind each review and LLM call, first-round reviews, the chair.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Rows written before keep ``default`` as their provider: every call went there then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column(
        "persona_reviews",
        sa.Column("provider", sa.String(100), server_default="default", nullable=False),
    )
    op.add_column("persona_reviews", sa.Column("first_round_review", _json(), nullable=True))
    op.add_column(
        "llm_calls",
        sa.Column("provider", sa.String(100), server_default="default", nullable=False),
    )
    op.create_table(
        "chair_reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("report", _json(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_chair_reports_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chair_reports")),
        sa.UniqueConstraint("run_id", name=op.f("uq_chair_reports_run_id")),
    )


def downgrade() -> None:
    op.drop_table("chair_reports")
    op.drop_column("llm_calls", "provider")
    op.drop_column("persona_reviews", "first_round_review")
    op.drop_column("persona_reviews", "provider")
