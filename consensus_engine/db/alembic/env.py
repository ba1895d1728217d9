"""Alembic's entry point: which database to migrate and what the schema should be.

The database is, first match wins: ``alembic -x url=...``; ``sqlalchemy.url``
set on the Config by a caller (tests do); the application's settings, through
the same engine factory the service uses, so Cloud SQL with IAM auth works for
``alembic upgrade head`` too.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Engine

from consensus_engine.db.engine import create_engine_from_settings, create_engine_from_url
from consensus_engine.db.models import metadata
from consensus_engine.settings import get_settings

config = context.config

# Only the ``alembic`` command reads an ini file (with its logging setup); the application's
# configuration (consensus_engine.db.migrations) has none and leaves logging to its caller.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _engine() -> Engine:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if url:
        return create_engine_from_url(url, poolclass=pool.NullPool)
    return create_engine_from_settings(get_settings())


def run_migrations_offline() -> None:
    """Print the SQL (``alembic upgrade head --sql``) without connecting."""
    engine = _engine()
    context.configure(
        url=engine.url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = _engine()
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                compare_type=True,
                # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
