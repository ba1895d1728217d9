"""Databases for local runs: scratch PostgreSQL databases (tests, benchmarks) and the demo's."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from consensus_engine.db.engine import describe_database, url_from_parts
from consensus_engine.settings import Settings


def sqlalchemy_url(url: str | sa.URL, *, database: str | None = None) -> str:
    """The URL with this project's driver, optionally pointing at another database."""
    parsed = sa.make_url(url).set(drivername="postgresql+psycopg2")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def admin_connection(url: str | sa.URL, *, timeout_s: int = 5) -> Iterator[sa.Connection]:
    """A connection outside any transaction, which CREATE/DROP DATABASE refuse to run in."""
    engine = sa.create_engine(
        sqlalchemy_url(url),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": timeout_s},
    )
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def connection_error(url: str | sa.URL, *, timeout_s: int = 2) -> str | None:
    """Why the server refuses a connection (its error's first line), or None if it accepts."""
    try:
        with admin_connection(url, timeout_s=timeout_s):
            return None
    except sa.exc.OperationalError as error:
        return str(error.orig or error).strip().partition("\n")[0]


def can_connect(url: str | sa.URL, *, timeout_s: int = 2) -> bool:
    return connection_error(url, timeout_s=timeout_s) is None


def create_database(server_url: str | sa.URL, name: str) -> None:
    """CREATE DATABASE ``name`` on the server; OperationalError if it does not answer."""
    with admin_connection(server_url, timeout_s=3) as connection:
        quoted = connection.dialect.identifier_preparer.quote(name)
        connection.exec_driver_sql(f"CREATE DATABASE {quoted}")


def drop_database(server_url: str | sa.URL, name: str) -> None:
    """Drop a database even if a leaked connection still uses it (PostgreSQL 13 and later)."""
    with admin_connection(server_url) as connection:
        quoted = connection.dialect.identifier_preparer.quote(name)
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """Create an empty database with a unique name; drop it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}".lower()
    create_database(server_url, name)
    try:
        yield sqlalchemy_url(server_url, database=name)
    finally:
        drop_database(server_url, name)


@dataclass(frozen=True)
class LocalDatabase:
    url: str | None
    """What to hand the worker as ``DATABASE_URL``; ``None``: the settings already say."""
    description: str


def local_database(settings: Settings, fallback_dir: Path) -> LocalDatabase:
    """The configured database if there is one, else PostgreSQL from ``DB_*`` (creating the
    database when the server is up but the database is not), else SQLite in ``fallback_dir``."""
    if settings.database_url is not None or settings.use_cloud_sql_connector:
        return LocalDatabase(None, describe_database(settings))
    url = url_from_parts(settings)
    if can_connect(url, timeout_s=3) or _created(url):
        return LocalDatabase(url.render_as_string(hide_password=False), describe_database(settings))
    fallback_dir.mkdir(parents=True, exist_ok=True)
    path = fallback_dir / "consensus.sqlite3"
    return LocalDatabase(
        f"sqlite:///{path}",
        f"SQLite file {path} (no PostgreSQL answered at {settings.db_host}:{settings.db_port})",
    )


def _created(url: sa.URL) -> bool:
    """Create ``url``'s database from the server's maintenance database, if we may."""
    maintenance = url.set(database="postgres")
    if not can_connect(maintenance, timeout_s=3):
        return False
    try:
        create_database(maintenance, str(url.database))
    except sa.exc.DBAPIError:
        return False
    return True
