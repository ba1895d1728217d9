"""Every LLM call names its tenant, so spend can be summed per tenant.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

The synchronous endpoints' calls have no run, so a tenant could not be found for them
through ``run_id``; budgets and the usage report need one for every call. Existing rows
take their run's tenant (calls without a run become ``default``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "llm_calls",
        sa.Column("tenant", sa.String(200), nullable=False, server_default="default"),
    )
    op.execute(
        "UPDATE llm_calls SET tenant = (SELECT runs.tenant FROM runs WHERE runs.id = "
        "llm_calls.run_id) WHERE run_id IS NOT NULL"
    )
    op.create_index(op.f("ix_llm_calls_tenant_created_at"), "llm_calls", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_llm_calls_tenant_created_at"), table_name="llm_calls")
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_column("tenant")
