"""Fixtures shared by the whole suite.

Database fixtures are lazy: a test that asks for none of them never touches
PostgreSQL. Those that do are marked ``postgres`` automatically, so
``pytest -m "not postgres"`` runs without a server.

Under pytest-xdist each worker is its own pytest session, so every
session-scoped fixture below exists once per worker: each worker migrates its
own database, and workers never see each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from support import alembic_config
from support.postgres import NoPostgresError, postgres_server
from support.pubsub import PubSubBackend, selected_backend, start_pubsub_backend
from support.stack import PipelineStack, StackFactory

from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.db.models import metadata
from consensus_engine.devtools.database import scratch_database
from consensus_engine.devtools.offline_llm import OfflineLLMServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the server, directly or through another fixture."""
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if "pubsub_emulator" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pubsub)


def _worker() -> str:
    """'gw0', 'gw1', ... under xdist; 'main' otherwise. Part of every database name."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL server (its maintenance database); see ``support.postgres``."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server(os.environ.get("TEST_DATABASE_URL")))
        except NoPostgresError as error:
            pytest.exit(str(error), returncode=pytest.ExitCode.USAGE_ERROR)
        yield url


@pytest.fixture
def make_database(postgres_url: str) -> Iterator[Callable[[], str]]:
    """A factory of empty databases (URLs), each dropped when the test ends."""
    with contextlib.ExitStack() as stack:

        def make() -> str:
            return stack.enter_context(scratch_database(postgres_url, f"ce_empty_{_worker()}"))

        yield make


@pytest.fixture
def empty_database_url(make_database: Callable[[], str]) -> str:
    """URL of a new, empty database for this test alone (migration tests)."""
    return make_database()


@pytest.fixture(scope="session")
def database_url(postgres_url: str) -> Iterator[str]:
    """URL of this worker's database, created for the session and dropped after it."""
    with scratch_database(postgres_url, f"ce_test_{_worker()}") as url:
        yield url


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    """An engine on this worker's database, migrated to head once."""
    command.upgrade(alembic_config(database_url), "head")
    engine = create_engine_from_url(database_url, pool_size=2, max_overflow=2)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session on the migrated database; every table is emptied after the test."""
    session = session_factory(db_engine)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
        _empty_all_tables(db_engine)


def _empty_all_tables(engine: Engine) -> None:
    """Delete every row, children first.

    On tables this small DELETE is several times faster than TRUNCATE, which
    rewrites each table's files (about 80 ms a test here).
    """
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in the test's temporary directory (no server needed)."""
    return f"sqlite:///{tmp_path / 'consensus.sqlite3'}"


def pytest_report_header() -> str:
    """Say which Pub/Sub backend the ``pubsub`` tests will use (nothing is started here)."""
    name, detail = selected_backend()
    return f"pubsub backend: {name} ({detail})"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat the backend at the end, where ``-q`` runs (``make test``) show it too."""
    terminalreporter.write_line(pytest_report_header())


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubBackend]:
    """A Pub/Sub server for this worker, with PUBSUB_EMULATOR_HOST pointing at it.

    See ``support.pubsub`` for the choice: an external server, Google's
    emulator jar, or the embedded server. Clients read the variable when
    they are created, so create them inside the test (or use
    ``support.pubsub.publisher_client(backend.host)``).
    """
    backend = start_pubsub_backend()
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = backend.host
    sys.stderr.write(f"\npubsub backend: {backend.name} at {backend.host}\n")
    try:
        yield backend
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
        backend.stop()


@pytest.fixture
def pubsub_namespace() -> str:
    """A short unique prefix for this test's topic and subscription ids ("t" + 8 hex)."""
    return "t" + secrets.token_hex(4)


@pytest.fixture
def requires_google_emulator(pubsub_emulator: PubSubBackend) -> None:
    """Skip the test unless the backend is Google's emulator (not the embedded server).

    Use with ``@pytest.mark.usefixtures("requires_google_emulator")``.
    """
    if not pubsub_emulator.exact_google_behaviour:
        pytest.skip(f"needs Google's Pub/Sub emulator; the backend is {pubsub_emulator.name}")


@pytest.fixture
def make_stack(
    make_database: Callable[[], str],
    pubsub_emulator: PubSubBackend,
    pubsub_namespace: str,
    tmp_path: Path,
) -> Iterator[StackFactory]:
    """``make_stack(env={...}, **offline_llm_options)``: one stack per call, torn down after."""
    with contextlib.ExitStack() as stacks:

        def make(env: dict[str, str] | None = None, **llm_options: Any) -> PipelineStack:
            database_url = make_database()
            command.upgrade(alembic_config(database_url), "head")
            llm_options.setdefault("latency_ms", 50)
            llm = stacks.enter_context(OfflineLLMServer(**llm_options))
            host, namespace = pubsub_emulator.host, pubsub_namespace
            stack = PipelineStack(database_url, host, namespace, tmp_path, llm, env)
            stacks.callback(stack.close)
            return stack

        yield make


@pytest.fixture
def stack(make_stack: StackFactory) -> PipelineStack:
    """The default stack: 50 ms LLM latency, no faults."""
    return make_stack()
