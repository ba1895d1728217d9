"""The retry policy: the one place that decides whether a failed step is tried again."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from consensus_engine.domain.revisions import RevisionError
from consensus_engine.llm import (
    LLMAuthError,
    LLMCapacityWait,
    LLMRateLimitedError,
    LLMServerError,
)
from consensus_engine.pipeline.retries import (
    CAPACITY_JITTER,
    OUTAGE_MAX_BACKOFF,
    RetryPolicy,
    is_outage,
    is_retryable,
    spends_retry,
)
from consensus_engine.pipeline.work import StageInputError

POLICY = RetryPolicy(max_retries=3, initial_backoff=1.0, multiplier=2.0, max_backoff=10.0)


def test_transient_errors_back_off_exponentially_with_jitter() -> None:
    waits = [POLICY.retry_after(LLMServerError("500"), retries) for retries in range(3)]
    for wait, nominal in zip(waits, (1.0, 2.0, 4.0), strict=True):
        assert wait is not None and nominal * 0.9 <= wait <= nominal * 1.1


def test_the_backoff_is_capped() -> None:
    capped = RetryPolicy(max_retries=10, initial_backoff=1.0, multiplier=10.0, max_backoff=5.0)
    wait = capped.retry_after(LLMServerError("500"), 5)
    assert wait is not None and wait <= 5.5


def test_no_retry_once_the_retries_are_spent() -> None:
    assert POLICY.retry_after(LLMServerError("500"), 3) is None


@pytest.mark.parametrize(
    "error",
    [LLMAuthError("401"), StageInputError("no proposal"), RevisionError("bad edit")],
)
def test_permanent_errors_are_never_retried(error: Exception) -> None:
    assert not is_retryable(error)
    assert POLICY.retry_after(error, 0) is None


def test_interrupts_of_the_process_are_never_retried() -> None:
    assert POLICY.retry_after(KeyboardInterrupt(), 0) is None
    assert POLICY.retry_after(SystemExit(), 0) is None


def test_a_providers_retry_after_is_a_floor_within_the_cap() -> None:
    asked = POLICY.retry_after(LLMRateLimitedError("429", retry_after=7.0), 0)
    assert asked == 7.0
    beyond = POLICY.retry_after(LLMRateLimitedError("429", retry_after=60.0), 0)
    assert beyond == 10.0


def _unreachable() -> OperationalError:
    return OperationalError("SELECT 1", None, Exception("connection refused"))


def test_an_outage_is_retried_however_many_retries_were_spent() -> None:
    """The database being away is not the step's fault: it never runs out of tries, and
    waits stay short so that work resumes soon after the database returns."""
    waits = [POLICY.retry_after(_unreachable(), retries) for retries in (0, 3, 50, 10_000)]
    assert all(wait is not None for wait in waits)
    assert max(w for w in waits if w is not None) <= OUTAGE_MAX_BACKOFF * 1.1


@pytest.mark.parametrize(
    "error",
    [
        _unreachable(),
        InterfaceError("SELECT 1", None, Exception("connection already closed")),
        PoolTimeoutError("QueuePool limit reached"),
    ],
)
def test_what_counts_as_an_outage(error: Exception) -> None:
    assert is_outage(error)


def test_data_the_database_refused_is_no_outage() -> None:
    refused = DataError("INSERT", None, Exception("invalid byte sequence"))
    assert not is_outage(refused)
    assert POLICY.retry_after(refused, 0) is None


def test_a_wait_for_llm_capacity_comes_back_when_the_limiter_said_and_spends_nothing() -> None:
    """No request was sent: the step is not at fault, so it never runs out of tries and
    comes back at the time the shared limiter gave it, however far off."""
    wait = LLMCapacityWait("no room", retry_after=42.5)
    for retries in (0, 3, 10_000):
        again = POLICY.retry_after(wait, retries)
        assert again is not None and 42.5 <= again <= 42.5 + CAPACITY_JITTER
    assert not spends_retry(wait)


def test_only_outages_and_capacity_waits_spend_no_retry() -> None:
    assert not spends_retry(_unreachable())
    assert spends_retry(LLMServerError("500"))
    assert spends_retry(LLMRateLimitedError("429", retry_after=1.0))
