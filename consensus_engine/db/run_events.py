"""Listening for the notifications the schema sends when a run changes (migration 0002).

Only psycopg2 connections can be listened to here: they expose their socket, so the
listener sleeps on it and reads only when the server has sent something. Elsewhere (SQLite,
pg8000 through the Cloud SQL connector) :func:`can_listen` says no, and callers poll.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

CHANNEL = "run_events"


class ListenFailed(Exception):
    """The listening connection could not be opened, or was lost: open another."""


def can_listen(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2"


class Listening:
    """A connection of its own (outside the engine's pool) that has run ``LISTEN``."""

    def __init__(self, connection: Any, errors: type[Exception]) -> None:
        self._connection = connection
        self._errors = errors

    def fileno(self) -> int:
        """The socket, readable when the server has sent something (or hung up)."""
        fileno: int = self._connection.fileno()
        return fileno

    def received(self) -> set[uuid.UUID]:
        """The runs named since the last call; reads what has arrived, never waits."""
        try:
            self._connection.poll()
        except self._errors as error:
            raise ListenFailed(str(error).strip()) from error
        payloads = [notification.payload for notification in self._connection.notifies]
        self._connection.notifies.clear()
        run_ids = set()
        for payload in payloads:
            with contextlib.suppress(ValueError):  # only the triggers notify; never trust it
                run_ids.add(uuid.UUID(payload))
        return run_ids

    def close(self) -> None:
        with contextlib.suppress(self._errors):
            self._connection.close()


def listen(engine: Engine) -> Listening:
    """Connect and ``LISTEN``; blocks for as long as connecting takes."""
    try:
        pooled = engine.raw_connection()
    except SQLAlchemyError as error:  # the server, or a pool with no connection to spare
        raise ListenFailed(str(error).strip().partition("\n")[0]) from error
    # Detached, the pool forgets it: the pool's size stays what the settings say, and
    # nothing returns a listening connection to other users.
    pooled.detach()
    connection: Any = pooled.dbapi_connection  # psycopg2's, which can_listen checked
    errors: type[Exception] = engine.dialect.loaded_dbapi.Error
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
    except errors as error:
        with contextlib.suppress(errors):
            connection.close()
        raise ListenFailed(str(error).strip()) from error
    return Listening(connection, errors)
