"""The retry policy: whether a failed step is tried again, and after how long.

Every layer asks here: the stages (hand the step back or fail it for good), the worker
(what Dramatiq re-delivers), nothing else decides. Two waits are not the step's fault and
never spend its retries: an outage of the database (the message comes back every few
seconds until the database does) and an LLM whose shared rate limit has no room (it
comes back when the limiter says there is room). The run's deadline, which the sweeper
enforces, bounds both.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from consensus_engine.domain.aggregation import AggregationError
from consensus_engine.domain.personas import PersonaConfigError
from consensus_engine.domain.revisions import RevisionError
from consensus_engine.llm import (
    LLMCapacityWait,
    LLMConfigurationError,
    LLMPermanentError,
    LLMRateLimitedError,
)
from consensus_engine.pipeline.work import StageInputError
from consensus_engine.settings import Settings

PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    LLMPermanentError,
    LLMConfigurationError,
    StageInputError,
    RevisionError,
    PersonaConfigError,
    AggregationError,
)
"""Retrying cannot help: a bad API key, a refused request, a run missing its inputs."""

CAPACITY_JITTER = 0.2
"""Seconds added at random to a wait for LLM capacity. The limiter already gives each
waiting caller a time of its own; this only keeps apart callers told the same one."""

OUTAGE_MAX_BACKOFF = 10.0
"""The longest wait between two tries while the database is away: short, so that work
resumes within seconds of its return."""


def is_retryable(error: BaseException) -> bool:
    """Anything not known to be permanent may pass next time (rate limits, timeouts, a
    database that is away). Data the database refused would be refused again."""
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return False
    return not isinstance(error, PERMANENT_ERRORS) and not refused_data(error)


def refused_data(error: BaseException) -> bool:
    """The database (or its driver) refused what was written: not a connection problem."""
    if isinstance(error, DataError | IntegrityError):
        return True
    return isinstance(error, StatementError) and not isinstance(error, DBAPIError)


def is_outage(error: BaseException) -> bool:
    """The database could not be reached (refused, dropped, or no connection free)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(
        error, OperationalError | InterfaceError | DisconnectionError | PoolTimeoutError
    )


def spends_retry(error: BaseException) -> bool:
    """Whether trying again counts against the step's retries: not for an outage, nor for
    a wait for LLM capacity (no request was sent)."""
    return not (is_outage(error) or isinstance(error, LLMCapacityWait))


@dataclass(frozen=True)
class RetryPolicy:
    """``MAX_RETRIES_PER_PERSONA`` retries with exponential backoff and jitter."""

    max_retries: int
    initial_backoff: float
    multiplier: float
    max_backoff: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_retries=settings.max_retries_per_persona,
            initial_backoff=settings.retry_initial_backoff_seconds,
            multiplier=settings.retry_backoff_multiplier,
            max_backoff=settings.retry_max_backoff_seconds,
        )

    def retry_after(self, error: BaseException, retries: int) -> float | None:
        """Seconds to wait before the next try, or ``None``: the step fails for good.

        ``retries`` is how many times this step was retried already, free retries (see
        :func:`spends_retry`) not counted. A provider's Retry-After is a floor. An outage
        and a wait for LLM capacity are always retried, the latter when the limiter said.
        """
        if isinstance(error, LLMCapacityWait):
            return error.retry_after + random.uniform(0.0, CAPACITY_JITTER)  # noqa: S311
        if is_outage(error):
            return self._backoff(retries, min(self.max_backoff, OUTAGE_MAX_BACKOFF))
        if retries >= self.max_retries or not is_retryable(error):
            return None
        seconds = self._backoff(retries, self.max_backoff)
        if isinstance(error, LLMRateLimitedError) and error.retry_after:
            seconds = max(seconds, min(error.retry_after, self.max_backoff))
        return seconds

    def _backoff(self, retries: int, cap: float) -> float:
        seconds = self.initial_backoff * self.multiplier ** min(retries, 64)
        return min(seconds, cap) * random.uniform(0.9, 1.1)  # noqa: S311
