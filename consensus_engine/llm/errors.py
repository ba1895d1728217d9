"""LLM failures, split by whether retrying later can help.

The pipeline owns the retry policy: it retries :class:`LLMTransientError` and
fails the step on :class:`LLMPermanentError`. Messages are written for users
(no key, no provider stack trace); ``code`` is stable for APIs and metrics.
Every error carries the calls made so far, so their tokens and cost are stored
even when the step fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from consensus_engine.llm.records import CallRecord, LlmCallOutcome


class LLMConfigurationError(ValueError):
    """The client cannot be built from the given settings."""


class LLMError(Exception):
    """Base of every failure raised by :class:`~consensus_engine.llm.client.LLMClient`."""

    code: ClassVar[str] = "llm_error"
    transient: ClassVar[bool] = False
    outcome: ClassVar[LlmCallOutcome] = LlmCallOutcome.ERROR

    def __init__(
        self,
        message: str,
        *,
        calls: Sequence[CallRecord] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.calls: list[CallRecord] = list(calls)
        self.retry_after = retry_after
        """Seconds the provider asked us to wait, when it said so."""


class LLMTransientError(LLMError):
    """Worth retrying later: the same request may well succeed."""

    transient = True


class LLMPermanentError(LLMError):
    """Retrying the same request will fail the same way."""


class LLMRateLimitedError(LLMTransientError):
    code = "llm_rate_limited"
    outcome = LlmCallOutcome.RATE_LIMITED


class LLMCapacityWait(LLMTransientError):
    """No request was sent: the model's shared rate limit has no room until ``retry_after``
    seconds from now. Not the step's fault, so it spends none of its retries."""

    code = "llm_capacity_wait"

    def __init__(
        self, message: str, *, retry_after: float, calls: Sequence[CallRecord] = ()
    ) -> None:
        super().__init__(message, calls=calls, retry_after=retry_after)
        self.retry_after: float = retry_after


class LLMTimeoutError(LLMTransientError):
    code = "llm_timeout"
    outcome = LlmCallOutcome.TIMEOUT


class LLMConnectionError(LLMTransientError):
    code = "llm_connection"
    outcome = LlmCallOutcome.CONNECTION_ERROR


class LLMServerError(LLMTransientError):
    code = "llm_server_error"
    outcome = LlmCallOutcome.SERVER_ERROR


class LLMAuthError(LLMPermanentError):
    code = "llm_auth"
    outcome = LlmCallOutcome.AUTH_ERROR


class LLMQuotaError(LLMPermanentError):
    """A 429 that means "out of credit", which waiting does not fix."""

    code = "llm_quota_exceeded"
    outcome = LlmCallOutcome.RATE_LIMITED


class LLMBadRequestError(LLMPermanentError):
    code = "llm_bad_request"
    outcome = LlmCallOutcome.BAD_REQUEST


class LLMInvalidOutputError(LLMPermanentError):
    """The model kept answering with something that does not fit the schema."""

    code = "llm_invalid_output"
    outcome = LlmCallOutcome.INVALID_OUTPUT
