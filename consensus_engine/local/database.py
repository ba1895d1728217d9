"""A database for the demo: the configured one, a local PostgreSQL, or an embedded SQLite file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from consensus_engine.db.engine import describe_database, url_from_parts
from consensus_engine.settings import Settings

_CONNECT_TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class LocalDatabase:
    url: str | None
    """What to hand the worker as ``DATABASE_URL``; ``None``: the settings already say."""
    description: str


def _reachable(url: sa.URL) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS})
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def _create_database(url: sa.URL) -> bool:
    """Create ``url``'s database from the server's maintenance database, if we may."""
    maintenance = url.set(database="postgres")
    engine = sa.create_engine(
        maintenance,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS},
    )
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
        return True
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


def local_database(settings: Settings, fallback_dir: Path) -> LocalDatabase:
    """The configured database if there is one, else PostgreSQL from ``DB_*`` (creating the
    database when the server is up but the database is not), else SQLite in ``fallback_dir``."""
    if settings.database_url is not None or settings.use_cloud_sql_connector:
        return LocalDatabase(None, describe_database(settings))
    url = url_from_parts(settings)
    if _reachable(url) or (_reachable(url.set(database="postgres")) and _create_database(url)):
        return LocalDatabase(url.render_as_string(hide_password=False), describe_database(settings))
    fallback_dir.mkdir(parents=True, exist_ok=True)
    path = fallback_dir / "consensus.sqlite3"
    return LocalDatabase(
        f"sqlite:///{path}",
        f"SQLite file {path} (no PostgreSQL answered at {settings.db_host}:{settings.db_port})",
    )
