"""Column types that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
"""JSONB where indexable JSON exists, plain JSON (text) elsewhere."""


def utcnow() -> datetime:
    """The current time as an aware UTC datetime, the only kind the models store."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that always hands back aware UTC datetimes.

    SQLite has no time zones and returns naive values; storing UTC and
    re-attaching the zone on the way out keeps both backends identical. Naive
    values are refused on the way in, because guessing their zone hides bugs.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware (UTC) datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # SQLite hands back text for rows whose timestamp came from a server default.
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


ENUM_LENGTH = 20
"""Room for longer values later without widening the column."""


def str_enum(enum_class: type[StrEnum], *, name: str) -> sa.Enum:
    """A VARCHAR holding the enum's values, guarded by a named CHECK constraint.

    Not a native PostgreSQL ENUM: adding a value then needs no ``ALTER TYPE``, and
    the same column works on SQLite. ``name`` becomes the constraint's name
    (``ck_<table>_<name>`` under the models' naming convention).
    """
    return sa.Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
        length=max(ENUM_LENGTH, *(len(member.value) for member in enum_class)),
    )
