"""Budget holds: what each LLM call in flight may cost, held against its tenant's budget.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

A hold is written before the call and deleted with the transaction that records the call
in ``llm_calls``; see ``consensus_engine/db/budget_holds.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_budget_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("usd", sa.Numeric(12, 6), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("usd >= 0", name=op.f("ck_llm_budget_holds_usd_non_negative")),
        sa.CheckConstraint("tokens >= 0", name=op.f("ck_llm_budget_holds_tokens_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_budget_holds")),
    )
    op.create_index(
        op.f("ix_llm_budget_holds_tenant_expires_at"),
        "llm_budget_holds",
        ["tenant", "expires_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_llm_budget_holds_tenant_expires_at"), table_name="llm_budget_holds")
    op.drop_table("llm_budget_holds")
