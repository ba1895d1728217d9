"""The migrations build exactly the schema the models describe, and tear it down again.

Autogenerate's comparison covers tables, columns, types, indexes, unique and
foreign keys; it ignores CHECK constraints and server defaults, so on
PostgreSQL the catalogs of a migrated and a ``create_all`` database are
compared as well.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from support import REPO_ROOT, alembic_config, environ_without_settings

from consensus_engine.db.engine import create_engine_from_url
from consensus_engine.db.migrations import SCRIPTS
from consensus_engine.db.models import metadata

MODEL_TABLES = set(metadata.tables)


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _upgrade_compare_downgrade(url: str) -> None:
    config = alembic_config(url)
    engine = create_engine_from_url(url)
    try:
        command.upgrade(config, "head")
        assert _tables(engine) == MODEL_TABLES | {"alembic_version"}
        assert _differences(engine) == []

        command.downgrade(config, "base")
        assert _tables(engine) <= {"alembic_version"}

        command.upgrade(config, "head")  # the downgrade left nothing in the way
        assert _differences(engine) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_upgrade_matches_models_and_downgrade_removes_everything(
    empty_database_url: str,
) -> None:
    _upgrade_compare_downgrade(empty_database_url)


def test_sqlite_upgrade_matches_models_and_downgrade_removes_everything(sqlite_url: str) -> None:
    _upgrade_compare_downgrade(sqlite_url)


CATALOG_QUERIES = {
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    """,
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "columns": """
        SELECT table_name, column_name, data_type, character_maximum_length,
               numeric_precision, numeric_scale, is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'public'
    """,
}


def _catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine_from_url(url)
    try:
        with engine.connect() as connection:
            return {
                kind: sorted(
                    tuple(row)
                    for row in connection.execute(sa.text(query))
                    if row[0] != "alembic_version"
                )
                for kind, query in CATALOG_QUERIES.items()
            }
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_migrated_schema_equals_models_down_to_checks_and_defaults(
    make_database: Callable[[], str],
) -> None:
    migrated, created = make_database(), make_database()
    command.upgrade(alembic_config(migrated), "head")
    engine = create_engine_from_url(created)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()

    migrated_catalog, created_catalog = _catalog(migrated), _catalog(created)

    assert migrated_catalog == created_catalog
    check_names = {row[1] for row in migrated_catalog["constraints"] if row[1].startswith("ck_")}
    assert {"ck_runs_status", "ck_runs_decision", "ck_step_progress_status"} <= check_names


def test_history_is_one_line_of_revisions() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1


def test_offline_mode_prints_the_postgresql_ddl() -> None:
    output = io.StringIO()
    config = alembic_config("postgresql://nobody@127.0.0.1:1/none", sql_output=output)
    command.upgrade(config, "head", sql=True)
    ddl = output.getvalue()
    assert "CREATE TABLE runs" in ddl
    assert "JSONB" in ddl
    assert "CONSTRAINT ck_runs_status CHECK" in ddl


def test_the_scripts_are_inside_the_package() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert Path(script.dir) == SCRIPTS
    assert SCRIPTS.is_relative_to(REPO_ROOT / "consensus_engine")


def test_the_alembic_command_in_a_checkout_runs_the_packaged_scripts() -> None:
    """The root alembic.ini (for ``alembic revision`` and friends) names the same scripts."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "alembic"),
            "-x",
            "url=postgresql://nobody@127.0.0.1:1/none",
            "upgrade",
            "head",
            "--sql",
        ],
        cwd=REPO_ROOT,
        env=environ_without_settings(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE runs" in result.stdout
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert f"UPDATE alembic_version SET version_num='{head}'" in result.stdout
