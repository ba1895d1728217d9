"""Run events: PostgreSQL announces each change a progress stream shows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

A change of a run's status, or of a step's status or attempts, sends
``NOTIFY run_events, '<run id>'`` when its transaction commits, so the API's event streams
wake when there is something to send instead of reading every run's state several times a
second. Other updates (claim heartbeats, token counts) notify nobody. SQLite has no NOTIFY:
there the streams poll, and this revision does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# plpgsql plans a statement on its first run, per table, so each branch only ever reads
# the column its own table has.
NOTIFY_FUNCTION = """
CREATE FUNCTION notify_run_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'runs' THEN
        PERFORM pg_notify('run_events', NEW.id::text);
    ELSE
        PERFORM pg_notify('run_events', NEW.run_id::text);
    END IF;
    RETURN NULL;
END
$$
"""

TRIGGERS = {
    "runs": "OLD.status IS DISTINCT FROM NEW.status",
    "step_progress": "OLD.status IS DISTINCT FROM NEW.status "
    "OR OLD.attempts IS DISTINCT FROM NEW.attempts",
}


def _on_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    if not _on_postgresql():
        return
    op.execute(NOTIFY_FUNCTION)
    for table, changed in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {table}_notify_run_event AFTER UPDATE ON {table} "
            f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION notify_run_event()"
        )


def downgrade() -> None:
    if not _on_postgresql():
        return
    for table in TRIGGERS:
        op.execute(f"DROP TRIGGER {table}_notify_run_event ON {table}")
    op.execute("DROP FUNCTION notify_run_event()")
