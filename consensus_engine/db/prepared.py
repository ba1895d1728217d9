"""Server-side prepared statements for the hottest reads (PostgreSQL).

Why: the run documents are large statements; PostgreSQL plans one in about as long as
it takes to run it, and SQLAlchemy spends more CPU binding its constants than the answer
costs. Prepared once per connection (``PREPARE`` outlives transactions, and the pool
keeps the connection), each later read sends only ``EXECUTE name(args)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

_PREPARED = "consensus_prepared"
"""Key of the set of statement names prepared on a connection, in its ``info``."""


def arg(position: int, type_: sa.types.TypeEngine[Any] | None = None) -> sa.ColumnElement[Any]:
    """The statement's ``$position`` parameter."""
    return sa.literal_column(f"${position}", type_)


@dataclass(frozen=True)
class Statement:
    """A statement whose only parameters are ``$1``… of ``types``; constants are inlined."""

    name: str
    types: tuple[str, ...]
    query: sa.Select[Any]
    sql: str = field(init=False)

    def __post_init__(self) -> None:
        compiled = self.query.compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
        object.__setattr__(self, "sql", str(compiled))


def execute(session: Session, statement: Statement, *args: Any) -> sa.CursorResult[Any]:
    """``statement`` with ``args``, on the session's connection, prepared there first if new."""
    connection = session.connection()
    names: set[str] = connection.info.setdefault(_PREPARED, set())
    if statement.name not in names:
        types = ", ".join(statement.types)
        sql = statement.sql.replace("%", "%%")
        connection.exec_driver_sql(f"PREPARE {statement.name} ({types}) AS {sql}")
        names.add(statement.name)
    placeholders = ", ".join(["%s"] * len(args))
    return connection.exec_driver_sql(f"EXECUTE {statement.name} ({placeholders})", args)
