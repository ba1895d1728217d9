"""Whether one more call fits a tenant's budget: the rule the budget gate applies."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from consensus_engine.domain.budgets import Budget, Limit, Spend, crossed_by

AT = datetime(2026, 12, 7, 15, tzinfo=UTC)
BUDGET = Budget(usd_per_day=Decimal(5), usd_per_month=Decimal(100), tokens_per_day=10_000)


def test_a_call_that_reaches_a_limit_exactly_fits() -> None:
    spend = Spend(AT, usd_today=Decimal(4), usd_this_month=Decimal(40), tokens_today=9_000)
    assert crossed_by(BUDGET, spend, Decimal(1), 1_000) is None


def test_the_limit_a_call_would_cross_is_named_as_it_stands_before_the_call() -> None:
    spend = Spend(AT, usd_today=Decimal("4.5"), usd_this_month=Decimal(40), tokens_today=100)
    crossed = crossed_by(BUDGET, spend, Decimal(1), 1_000)
    assert crossed is not None
    assert (crossed.limit, crossed.allowed, crossed.used) == (
        Limit.USD_PER_DAY,
        Decimal(5),
        Decimal("4.5"),
    )
    assert crossed.resets_at == datetime(2026, 12, 8, tzinfo=UTC)


def test_of_several_limits_crossed_the_one_that_resets_last_is_named() -> None:
    spend = Spend(AT, usd_today=Decimal("4.5"), usd_this_month=Decimal("99.5"))
    crossed = crossed_by(BUDGET, spend, Decimal(1), 0)
    assert crossed is not None and crossed.limit is Limit.USD_PER_MONTH
    assert crossed.resets_at == datetime(2027, 1, 1, tzinfo=UTC)


def test_tokens_count_against_the_token_limit_alone() -> None:
    spend = Spend(AT, tokens_today=9_500)
    crossed = crossed_by(BUDGET, spend, Decimal(0), 1_000)
    assert crossed is not None and crossed.limit is Limit.TOKENS_PER_DAY
    assert crossed_by(Budget(), spend, Decimal(10**6), 10**9) is None  # no limits at all
