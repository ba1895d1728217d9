"""Searching runs and deleting them: a run's text search vector, and LLM calls that outlive
their run.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

``runs.search_vector`` holds the idea and the proposal's text as one ``tsvector`` (the
``english`` configuration), kept up to date by triggers on PostgreSQL: when a run is
stored, and when its proposal is stored or changed. One vector over both documents, so
that a search for two words finds a run whose idea has one and whose proposal the other;
an expression index cannot span the two tables. It is indexed with GIN. SQLite has
neither, so there the column stays empty and the search reads the text itself.

``llm_calls.run_id`` now becomes NULL when its run is deleted instead of taking the call
with it: the call was made and billed, and budgets sum ``llm_calls``, so deleting a run
must not give its tenant the money back.

``runs.completed_at`` is indexed for the sweeper, which deletes runs that ended longer ago
than ``RUN_RETENTION_DAYS``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The configuration ('english') is the one ``consensus_engine.db.reads.SEARCH_CONFIG``
# queries with. One run's vector: its idea, then its proposal's strings (not its keys).
VECTOR = """
to_tsvector('english', {run}.idea) || coalesce(
    (SELECT to_tsvector('english', p.proposal) FROM proposal_versions p
     WHERE p.run_id = {run}.id),
    ''::tsvector
)"""

FUNCTIONS = {
    # BEFORE INSERT OR UPDATE OF idea ON runs: the run's own row, before it is written.
    "runs_search_vector": """
CREATE FUNCTION runs_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_vector := {vector};
    RETURN NEW;
END
$$
""".format(vector=VECTOR.format(run="NEW")),
    # AFTER INSERT OR UPDATE OF proposal ON proposal_versions: the run it belongs to.
    "proposal_versions_search_vector": """
CREATE FUNCTION proposal_versions_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE runs SET search_vector = {vector} WHERE runs.id = NEW.run_id;
    RETURN NULL;
END
$$
""".format(vector=VECTOR.format(run="runs")),
}

TRIGGERS = {
    "runs_search_vector": ("BEFORE INSERT OR UPDATE OF idea", "runs"),
    "proposal_versions_search_vector": (
        "AFTER INSERT OR UPDATE OF proposal",
        "proposal_versions",
    ),
}


def _on_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _llm_call_run_fk(ondelete: str) -> None:
    """Point ``llm_calls.run_id`` at its run again, with ``ondelete``."""
    name = op.f("fk_llm_calls_run_id_runs")
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_constraint(name, type_="foreignkey")
        batch.create_foreign_key(name, "runs", ["run_id"], ["id"], ondelete=ondelete)


def upgrade() -> None:
    vector = sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")
    op.add_column("runs", sa.Column("search_vector", vector, nullable=True))
    op.create_index(
        op.f("ix_runs_search_vector"), "runs", ["search_vector"], postgresql_using="gin"
    )
    op.create_index(op.f("ix_runs_completed_at"), "runs", ["completed_at"])
    _llm_call_run_fk("SET NULL")
    if not _on_postgresql():
        return
    for name, function in FUNCTIONS.items():
        when, table = TRIGGERS[name]
        op.execute(function)
        op.execute(
            f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
    op.execute("UPDATE runs SET search_vector = " + VECTOR.format(run="runs"))


def downgrade() -> None:
    if _on_postgresql():
        for name, (_, table) in TRIGGERS.items():
            op.execute(f"DROP TRIGGER {name} ON {table}")
            op.execute(f"DROP FUNCTION {name}()")
    # Calls whose run was deleted keep an empty run_id, which the older rule allows too.
    _llm_call_run_fk("CASCADE")
    op.drop_index(op.f("ix_runs_completed_at"), table_name="runs")
    op.drop_index(op.f("ix_runs_search_vector"), table_name="runs")
    # Not in batch mode: on SQLite that rebuilds the table, and dropping the old one would
    # cascade to every table that refers to runs. SQLite drops a column itself (3.35+).
    op.drop_column("runs", "search_vector")
