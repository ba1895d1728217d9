"""Reading what a provider's headers say about its rate limits."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from consensus_engine.llm.provider_limits import (
    Headroom,
    ProviderLimits,
    duration_seconds,
    read_limits,
    retry_after,
)

OPENAI_HEADERS = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-requests": "120ms",
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-tokens": "150000",
    "x-ratelimit-reset-tokens": "15s",
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("59.88s", 59.88),
        ("12", 12.0),
        ("0.25", 0.25),
    ],
)
def test_reset_durations_in_openais_format(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "1s and more", "-"])
def test_what_is_not_a_duration(text: str) -> None:
    assert duration_seconds(text) is None


def test_an_answers_headers_give_both_budgets() -> None:
    limits = read_limits(OPENAI_HEADERS)

    assert limits == ProviderLimits(
        requests=Headroom(remaining=499, reset_seconds=0.12, limit=500),
        tokens=Headroom(remaining=150_000, reset_seconds=15.0, limit=200_000),
    )


def test_headers_without_limits_say_nothing() -> None:
    assert read_limits({"content-type": "application/json"}) is None
    # Half a budget, or one that does not parse, is no budget.
    assert read_limits({"x-ratelimit-remaining-requests": "3"}) is None
    broken = {"x-ratelimit-remaining-tokens": "many", "x-ratelimit-reset-tokens": "1s"}
    assert read_limits(broken) is None


def test_retry_after_in_milliseconds_seconds_or_a_date() -> None:
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "7"}) == 7.0
    when = datetime.now(UTC) + timedelta(seconds=30)
    dated = retry_after({"retry-after": email.utils.format_datetime(when, usegmt=True)})
    assert dated is not None and 25 < dated <= 30
    assert retry_after({"retry-after": "whenever"}) is None
    assert retry_after({}) is None
    assert read_limits({"retry-after": "2"}) == ProviderLimits(retry_after=2.0)


def test_the_wait_for_room_assumes_an_even_refill() -> None:
    # 120 a minute, none left, whole again in 60 s: one more in half a second.
    empty = Headroom(remaining=0, reset_seconds=60.0, limit=120)
    assert empty.wait_for(1) == pytest.approx(0.5)
    assert empty.wait_for(240) == 60.0  # never longer than the reset
    assert Headroom(remaining=5, reset_seconds=60.0, limit=120).wait_for(5) == 0.0
    assert Headroom(remaining=0, reset_seconds=3.0).wait_for(1) == 3.0  # no limit given


def test_the_pause_lasts_until_one_more_call_fits() -> None:
    limits = ProviderLimits(
        requests=Headroom(remaining=10, reset_seconds=1.0, limit=100),
        tokens=Headroom(remaining=1_000, reset_seconds=30.0, limit=10_000),
    )
    assert limits.pause(tokens_needed=500) == 0.0
    # 4,000 tokens more than remain, at 9,000 tokens per 30 s: 4,000 / 300 s.
    assert limits.pause(tokens_needed=5_000) == pytest.approx(4_000 / 300)
    assert ProviderLimits(retry_after=3.0).pause(tokens_needed=1) == 3.0
