"""What a client is told when the LLM behind a synchronous request fails.

A stable code and status per kind of failure, and nothing from the provider: its text may
name hosts, keys or models, which stay in the server's log.
"""

from __future__ import annotations

import math

from consensus_engine.api.errors import ApiError
from consensus_engine.llm import (
    LLMAuthError,
    LLMCapacityWait,
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
    long) or this deployment's share of its rate limit is used up (``Retry-After``: until
    there is room), 502 for anything else."""
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
    if isinstance(error, LLMCapacityWait):
        return _unavailable(
            "LLM_CAPACITY",
            "the rate limit this deployment has at the LLM provider is used up for now; "
            "try again after Retry-After",
            error.retry_after,
        )
    if isinstance(error, LLMTransientError | LLMQuotaError):
        return _unavailable(
            "LLM_UNAVAILABLE",
            "the LLM provider is unavailable or rate-limiting; try again later",
            error.retry_after,
        )
    return ApiError(502, "LLM_ERROR", "the LLM provider could not complete the request")


def _unavailable(code: str, message: str, retry_after: float | None) -> ApiError:
    """503, with ``Retry-After`` in whole seconds when it is known."""
    if retry_after is None:
        return ApiError(503, code, message)
    seconds = max(1, math.ceil(retry_after))
    return ApiError(
        503,
        code,
        message,
        details={"retry_after_seconds": seconds},
        headers={"Retry-After": str(seconds)},
    )
