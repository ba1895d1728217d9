"""What a client is told when the LLM behind a synchronous request fails.

A stable code and status per kind of failure, and nothing from the provider: its text may
name hosts, keys or models, which stay in the server's log.
"""

from __future__ import annotations

import math

from consensus_engine.api.errors import ApiError
from consensus_engine.llm import (
    LLMAuthError,
    LLMError,
    LLMInvalidOutputError,
    LLMQuotaError,
    LLMTransientError,
)


def llm_not_configured() -> ApiError:
    """503: this server cannot build its LLM client (settings or price table)."""
    return ApiError(503, "LLM_NOT_CONFIGURED", "the LLM is not configured on this server")


def llm_error(error: LLMError) -> ApiError:
    """503 while the provider is down or rate-limiting (``Retry-After`` when it said how
    long), 502 for anything else."""
    if isinstance(error, LLMAuthError):
        return ApiError(
            502,
            "LLM_AUTH_ERROR",
            "the LLM provider rejected this server's credentials; contact the operator",
        )
    if isinstance(error, LLMInvalidOutputError):
        return ApiError(
            502, "LLM_BAD_OUTPUT", "the LLM answered with output that could not be used; try again"
        )
    if isinstance(error, LLMTransientError | LLMQuotaError):
        headers = None
        details = None
        if error.retry_after is not None:
            seconds = max(1, math.ceil(error.retry_after))
            headers = {"Retry-After": str(seconds)}
            details = {"retry_after_seconds": seconds}
        return ApiError(
            503,
            "LLM_UNAVAILABLE",
            "the LLM provider is unavailable or rate-limiting; try again later",
            details=details,
            headers=headers,
        )
    return ApiError(502, "LLM_ERROR", "the LLM provider could not complete the request")
