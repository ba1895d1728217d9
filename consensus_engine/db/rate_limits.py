"""The shared rate-limit buckets (:mod:`consensus_engine.llm.rate_limits`) in the database.

One row per model, ``llm_rate_limits``: for each bucket, the time at which it is full
again (a bucket ``d`` seconds from full lacks ``d`` seconds of refill). Taking capacity is
one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` that works out the refill from the
database's clock, decides, and answers in the same statement, with the model's row locked
for just that statement: every process and replica shares the row, and a take is one
round trip. The store keeps one connection per process for it, in autocommit on
PostgreSQL (no BEGIN or COMMIT round trips, no ping on checkout); SQLite gets the same
statement in a transaction (the demo: one machine, one file).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from consensus_engine.db.models import LlmRateLimit
from consensus_engine.llm.rate_limits import Draw, Taken

_UNLIMITED = 1e9
"""The allowance of a bucket the model does not have: about 30 years of refill."""

Expression = sa.SQLColumnExpression[float]
Statement = Callable[[str], sa.Executable]
"""A statement for a dialect (by name), its values bound at execution."""


class DatabaseBuckets:
    """A :class:`~consensus_engine.llm.rate_limits.BucketStore` in ``llm_rate_limits``;
    thread-safe, one per process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._connection: Connection | None = None

    def take(
        self, model: str, requests: Draw | None, tokens: Draw | None, patience: float
    ) -> Taken:
        requests_allowance, requests_seconds = _terms(requests)
        tokens_allowance, tokens_seconds = _terms(tokens)
        values = {
            "model_name": model,
            "requests_allowance": requests_allowance,
            "requests_seconds": requests_seconds,
            "tokens_allowance": tokens_allowance,
            "tokens_seconds": tokens_seconds,
            "spacing": max(requests_seconds, tokens_seconds),
            "patience": patience,
        }
        (wait,) = self._execute(_take, values)
        if wait is None:
            return Taken(admitted=True, wait=0.0)
        return Taken(admitted=False, wait=max(float(wait), 0.0))

    def settle(self, model: str, tokens: Draw | None, pause: float) -> None:
        shift = 0.0 if tokens is None else tokens.seconds
        self._execute(_settle, {"model_name": model, "shift": shift, "pause": max(pause, 0.0)})

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _execute(self, statement: Statement, values: dict[str, Any]) -> Sequence[Any]:
        """Run the statement on the store's connection; the first row's values, if any.
        A connection the server dropped (it may have idled out) is replaced and the
        statement sent once more; any other error is the caller's."""
        with self._lock:
            try:
                return self._run(statement, values)
            except DBAPIError as error:
                self._drop()
                if not error.connection_invalidated:
                    raise
            try:
                return self._run(statement, values)
            except DBAPIError:
                self._drop()
                raise

    def _run(self, statement: Statement, values: dict[str, Any]) -> Sequence[Any]:
        connection = self._connect()
        with connection.begin():
            result = connection.execute(statement(connection.dialect.name), values)
            return tuple(result.one()) if result.returns_rows else ()

    def _connect(self) -> Connection:
        if self._connection is None:
            connection = self._engine.connect()
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                # Not worth a disk flush: a crash can lose the last moment's takes, which
                # only lets that many calls through once more.
                connection.exec_driver_sql("SET synchronous_commit TO off")
                connection.commit()
            self._connection = connection
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.invalidate()
            connection.close()


def _terms(draw: Draw | None) -> tuple[float, float]:
    """(allowance, seconds) of a draw; a bucket the model lacks always has room."""
    return (_UNLIMITED, 0.0) if draw is None else (draw.allowance, draw.seconds)


def _clock(dialect: str) -> sa.ColumnElement[float]:
    """The database's time in seconds since the epoch, fixed for the whole statement."""
    if dialect == "sqlite":
        return (sa.func.julianday("now") - 2440587.5) * 86400.0
    return sa.cast(sa.extract("epoch", sa.func.now()), sa.Double())


def _latest(dialect: str, *values: Expression) -> sa.ColumnElement[float]:
    """The greatest of the values (``greatest`` on PostgreSQL, ``max`` on SQLite)."""
    latest = sa.func.max if dialect == "sqlite" else sa.func.greatest
    return latest(*values, type_=sa.Double())


def _value(name: str) -> sa.BindParameter[float]:
    return sa.bindparam(name, type_=sa.Double())


@functools.cache
def _take(dialect: str) -> sa.Executable:
    """The take, built once per dialect; ``DatabaseBuckets.take`` names its values."""
    row = LlmRateLimit
    now = _clock(dialect)
    requests_seconds, tokens_seconds = _value("requests_seconds"), _value("tokens_seconds")
    patience, spacing = _value("patience"), _value("spacing")
    # The first moment both buckets have room for the draws and the model is not paused.
    ready = _latest(
        dialect,
        row.requests_full_at - _value("requests_allowance"),
        row.tokens_full_at - _value("tokens_allowance"),
        row.paused_until,
    )
    admit = ready <= now
    # A refused caller's turn comes after every turn given out, and once there is room.
    turn = _latest(dialect, row.queue_until, ready)
    queued = turn <= now + patience
    # One that cannot wait that long comes back when its turn would be near enough.
    back = _latest(dialect, row.lobby_until, turn - patience)
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(row)
    return (
        insert.values(
            model=sa.bindparam("model_name", type_=sa.String()),
            requests_full_at=now + requests_seconds,
            tokens_full_at=now + tokens_seconds,
            queue_until=now,
            lobby_until=now,
            paused_until=now,
            last_wait=None,
        )
        .on_conflict_do_update(
            index_elements=[row.model],
            set_={
                "requests_full_at": sa.case(
                    (admit, _latest(dialect, row.requests_full_at, now) + requests_seconds),
                    else_=row.requests_full_at,
                ),
                "tokens_full_at": sa.case(
                    (admit, _latest(dialect, row.tokens_full_at, now) + tokens_seconds),
                    else_=row.tokens_full_at,
                ),
                "queue_until": sa.case(
                    (admit, row.queue_until), (queued, turn + spacing), else_=row.queue_until
                ),
                "lobby_until": sa.case(
                    (sa.or_(admit, queued), row.lobby_until), else_=back + spacing
                ),
                "last_wait": sa.case((admit, None), (queued, turn - now), else_=back - now),
            },
        )
        .returning(row.last_wait)
    )


@functools.cache
def _settle(dialect: str) -> sa.Executable:
    """Shift the tokens bucket by ``shift`` seconds of refill; pause for ``pause`` seconds."""
    row = LlmRateLimit
    return (
        sa.update(row)
        .where(row.model == sa.bindparam("model_name", type_=sa.String()))
        .values(
            tokens_full_at=row.tokens_full_at + _value("shift"),
            paused_until=_latest(dialect, row.paused_until, _clock(dialect) + _value("pause")),
        )
    )
