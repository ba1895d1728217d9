"""Rate limits: one row per model holds the buckets every worker and API replica shares.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Rows are created by the first call to a model with limits; see
``consensus_engine/db/rate_limits.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_rate_limits",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("requests_full_at", sa.Double(), nullable=False),
        sa.Column("tokens_full_at", sa.Double(), nullable=False),
        sa.Column("queue_until", sa.Double(), nullable=False),
        sa.Column("lobby_until", sa.Double(), nullable=False),
        sa.Column("paused_until", sa.Double(), nullable=False),
        sa.Column("last_wait", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_llm_rate_limits")),
    )


def downgrade() -> None:
    op.drop_table("llm_rate_limits")
