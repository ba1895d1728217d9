"""Tenant budgets: how much a tenant may spend on the LLM per day and month.

A budget has up to three limits: USD per UTC day, USD per UTC calendar month, and tokens
per UTC day; a limit left out is no limit. Each tenant has its own budget or the
``default`` one; a tenant's budget names only what differs from the default. Before each
LLM call its worst case is held against the budget (a :class:`Hold`) until the call is
recorded, so that calls in flight count too. Nothing here reads the clock or the
database: callers pass the time and what was spent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

DEFAULT_TENANT_BUDGET = "default"


class BudgetConfigError(ValueError):
    """The budgets setting cannot be used; the message names the tenant and the field."""


class Limit(StrEnum):
    USD_PER_DAY = "usd_per_day"
    USD_PER_MONTH = "usd_per_month"
    TOKENS_PER_DAY = "tokens_per_day"


@dataclass(frozen=True)
class Budget:
    usd_per_day: Decimal | None = None
    usd_per_month: Decimal | None = None
    tokens_per_day: int | None = None

    def allowed(self, limit: Limit) -> Decimal | None:
        value = getattr(self, limit.value)
        return None if value is None else Decimal(value)


@dataclass(frozen=True)
class Spend:
    """What a tenant used in the periods that contain ``at``."""

    at: datetime
    usd_today: Decimal = Decimal(0)
    usd_this_month: Decimal = Decimal(0)
    tokens_today: int = 0

    def plus(self, usd: Decimal, tokens: int) -> Spend:
        """This spend and ``usd`` and ``tokens`` more, in every period."""
        return replace(
            self,
            usd_today=self.usd_today + usd,
            usd_this_month=self.usd_this_month + usd,
            tokens_today=self.tokens_today + tokens,
        )

    def used(self, limit: Limit) -> Decimal:
        return {
            Limit.USD_PER_DAY: self.usd_today,
            Limit.USD_PER_MONTH: self.usd_this_month,
            Limit.TOKENS_PER_DAY: Decimal(self.tokens_today),
        }[limit]


@dataclass(frozen=True)
class Standing:
    """One limit of a budget: what it allows, what was used, and when it starts over."""

    limit: Limit
    allowed: Decimal
    used: Decimal
    resets_at: datetime

    @property
    def left(self) -> Decimal:
        return max(self.allowed - self.used, Decimal(0))

    @property
    def exhausted(self) -> bool:
        return self.used >= self.allowed

    def __str__(self) -> str:
        return (
            f"{self.limit.value} allows {self.allowed}, {self.used} used; it resets at "
            f"{self.resets_at.isoformat()}"
        )


def day_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(at: datetime) -> datetime:
    return day_start(at).replace(day=1)


def resets_at(limit: Limit, at: datetime) -> datetime:
    """When the period of ``limit`` that contains ``at`` ends."""
    if limit is Limit.USD_PER_MONTH:
        start = month_start(at)
        return (start + timedelta(days=32)).replace(day=1)
    return day_start(at) + timedelta(days=1)


def standings(budget: Budget, spend: Spend) -> list[Standing]:
    """Each limit the budget sets, against what was spent."""
    return [
        Standing(limit, allowed, spend.used(limit), resets_at(limit, spend.at))
        for limit in Limit
        if (allowed := budget.allowed(limit)) is not None
    ]


def first_exhausted(budget: Budget, spend: Spend) -> Standing | None:
    """The limit that is used up, if any (the one that resets last when several are)."""
    spent = [s for s in standings(budget, spend) if s.exhausted]
    return max(spent, key=lambda s: s.resets_at, default=None)


def crossed_by(budget: Budget, spend: Spend, usd: Decimal, tokens: int) -> Standing | None:
    """The limit that ``usd`` and ``tokens`` more would take past what it allows, as it
    stands before them; ``None``: they fit (reaching a limit exactly is allowed)."""
    before = standings(budget, spend)
    after = standings(budget, spend.plus(usd, tokens))
    crossed = [now for now, then in zip(before, after, strict=True) if then.used > then.allowed]
    return max(crossed, key=lambda s: s.resets_at, default=None)


@dataclass(frozen=True)
class Hold:
    """What one LLM call may cost at most, held against its tenant's budget from before the
    call until the call is recorded (or ``expires_at``, should it never be: a crash)."""

    call_id: uuid.UUID
    tenant: str
    usd: Decimal
    tokens: int
    expires_at: datetime


@dataclass(frozen=True)
class Budgets:
    """Every tenant's budget, from the ``TENANT_BUDGETS_JSON`` setting."""

    default: Budget = Budget()
    tenants: Mapping[str, Budget] | None = None

    def for_tenant(self, tenant: str) -> Budget:
        return (self.tenants or {}).get(tenant, self.default)

    @property
    def named(self) -> frozenset[str]:
        """The tenants with an entry of their own: those metrics show by name."""
        return frozenset(self.tenants or {})

    @classmethod
    def from_json(cls, text: str | None) -> Budgets:
        """``{"default": {"usd_per_day": 5}, "acme": {"usd_per_month": 200}}``; a tenant's
        entry overrides the default's fields (``null`` lifts a limit)."""
        if not text or not text.strip():
            return cls()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise BudgetConfigError(f"not JSON: {error.msg}") from None
        if not isinstance(raw, dict):
            raise BudgetConfigError("must be an object of tenant names to budgets")
        default = _budget(DEFAULT_TENANT_BUDGET, raw.get(DEFAULT_TENANT_BUDGET, {}), Budget())
        tenants = {
            name: _budget(name, entry, default)
            for name, entry in raw.items()
            if name != DEFAULT_TENANT_BUDGET
        }
        return cls(default, tenants)


def _budget(tenant: str, entry: Any, base: Budget) -> Budget:
    if not isinstance(entry, dict):
        raise BudgetConfigError(f"{tenant}: must be an object of limits")
    known = {f.name for f in fields(Budget)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise BudgetConfigError(f"{tenant}: unknown limit {unknown[0]!r} (known: {sorted(known)})")
    values: dict[str, Any] = {}
    for name, value in entry.items():
        values[name] = None if value is None else _amount(tenant, name, value)
    return replace(base, **values)


def _amount(tenant: str, name: str, value: Any) -> Decimal | int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BudgetConfigError(f"{tenant}.{name}: must be a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise BudgetConfigError(f"{tenant}.{name}: must be a number") from None
    if amount < 0:
        raise BudgetConfigError(f"{tenant}.{name}: must not be negative")
    return int(amount) if name == Limit.TOKENS_PER_DAY else amount
