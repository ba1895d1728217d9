"""Engines and sessions from :class:`Settings`: a URL, Cloud SQL, or host and port.

Three ways to reach the database, first match wins:

1. ``DATABASE_URL`` — anything SQLAlchemy accepts (tests, local development).
2. ``USE_CLOUD_SQL_CONNECTOR`` — the Cloud SQL Python Connector with pg8000, so
   no proxy sidecar is needed and ``DB_IAM_AUTH`` can replace the password.
3. ``DB_HOST``/``DB_PORT``/``DB_USER``/``DB_PASSWORD``/``DB_NAME`` with psycopg2.

The password never appears in a log line, a repr or an error message built here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.settings import Settings


class CloudSqlConnector(Protocol):
    """The part of ``google.cloud.sql.connector.Connector`` used here."""

    def connect(self, instance_connection_string: str, driver: str, **kwargs: Any) -> Any: ...

    def close(self) -> None: ...


ConnectorFactory = Callable[[], CloudSqlConnector]


_SAFE: dict[str, Any] = {"hide_parameters": True}
"""A failed statement's error never carries its parameters (an idea, a proposal, a key)."""


def create_engine_from_settings(
    settings: Settings, *, connector_factory: ConnectorFactory | None = None
) -> Engine:
    """Build (but do not connect) the engine the settings describe.

    ``connector_factory`` replaces the Cloud SQL ``Connector`` class, for tests.
    """
    if settings.database_url is not None:
        return create_engine_from_url(
            settings.database_url.get_secret_value(), **_pool_options(settings)
        )
    if settings.use_cloud_sql_connector:
        return _cloud_sql_engine(settings, connector_factory)
    return sa.create_engine(url_from_parts(settings), **_SAFE, **_pool_options(settings))


def create_engine_from_url(url: str | URL, **pool_options: Any) -> Engine:
    """An engine for an explicit URL (migrations, tests, ``DATABASE_URL``).

    ``pool_options`` apply to server databases only; SQLite gets its own setup.
    """
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(parsed, **_SAFE, **pool_options)


def _sqlite_engine(url: URL) -> Engine:
    """A SQLite engine that enforces foreign keys and honours savepoints.

    SQLite ignores foreign keys (and so ON DELETE) unless each connection asks,
    and Python's sqlite3 module opens transactions lazily, which breaks
    SAVEPOINT; here SQLAlchemy, not the driver, emits BEGIN.
    """
    engine = sa.create_engine(url, connect_args={"timeout": 30}, **_SAFE)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver stops issuing BEGIN itself
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front, so concurrent writers (worker
        # threads) wait for it (busy timeout) instead of failing with "locked".
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (API responses are built then)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def describe_database(settings: Settings) -> str:
    """Where the settings point, safe for logs: no password, no query-string values."""
    if settings.database_url is not None:
        url = _parse_url(settings.database_url.get_secret_value())
        shown = url.set(query={}).render_as_string(hide_password=True)
        masked = "&".join(f"{key}=***" for key in url.query)
        return f"{shown}?{masked}" if masked else shown
    if settings.use_cloud_sql_connector:
        auth = "IAM" if settings.db_iam_auth else "password"
        return (
            f"Cloud SQL instance {settings.db_instance_connection_name} "
            f"(database {settings.db_name}, user {settings.db_user}, {auth} auth)"
        )
    return url_from_parts(settings).render_as_string(hide_password=True)


def _parse_url(raw: str | URL) -> URL:
    """Parse a URL, naming the driver this project installs when none is given.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not a
    dependency; Heroku-style ``postgres://`` is not recognised at all.
    """
    if isinstance(raw, str) and raw.startswith("postgres://"):
        raw = "postgresql://" + raw.removeprefix("postgres://")
    url = sa.make_url(raw)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return url


def url_from_parts(settings: Settings) -> URL:
    """The PostgreSQL URL the ``DB_*`` settings describe (no connector)."""
    # URL.create escapes reserved characters in the password itself.
    password = settings.db_password.get_secret_value() if settings.db_password else None
    return URL.create(
        "postgresql+psycopg2",
        username=settings.db_user,
        password=password,
        host=settings.db_host,
        port=settings.db_port,
        database=settings.db_name,
    )


def _pool_options(settings: Settings) -> dict[str, Any]:
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": settings.db_pool_recycle,
        "pool_pre_ping": True,
    }


def _cloud_sql_engine(settings: Settings, connector_factory: ConnectorFactory | None) -> Engine:
    holder = _LazyConnector(connector_factory or _default_connector_factory)
    instance = settings.db_instance_connection_name
    if not instance:  # Settings already refuses this; keep the type checker honest.
        raise ValueError("DB_INSTANCE_CONNECTION_NAME is required for the Cloud SQL connector")
    options: dict[str, Any] = {
        "user": settings.db_user,
        "db": settings.db_name,
        "enable_iam_auth": settings.db_iam_auth,
    }
    if not settings.db_iam_auth and settings.db_password is not None:
        options["password"] = settings.db_password.get_secret_value()

    def connect() -> Any:
        return holder.get().connect(instance, "pg8000", **options)

    engine = sa.create_engine(
        "postgresql+pg8000://", creator=connect, **_SAFE, **_pool_options(settings)
    )
    sa.event.listen(engine, "engine_disposed", lambda _engine: holder.close())
    return engine


class _LazyConnector:
    """Creates the Connector on the first connection, not at import or engine time.

    The Connector starts a background thread; building it lazily keeps engines
    cheap to create (and safe to create before a worker process forks).
    """

    def __init__(self, factory: ConnectorFactory) -> None:
        self._factory = factory
        self._connector: CloudSqlConnector | None = None
        self._lock = threading.Lock()

    def get(self) -> CloudSqlConnector:
        with self._lock:
            if self._connector is None:
                self._connector = self._factory()
            return self._connector

    def close(self) -> None:
        with self._lock:
            connector, self._connector = self._connector, None
        if connector is not None:
            connector.close()


def _default_connector_factory() -> CloudSqlConnector:
    from google.cloud.sql.connector import Connector  # imported lazily: heavy, optional path

    connector: CloudSqlConnector = Connector()
    return connector
