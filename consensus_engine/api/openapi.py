"""What the routes document beyond their models: the errors they answer, and links.

Shared so that every route describes a status the same way in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from consensus_engine.api.schemas import ErrorEnvelope

_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the request cannot be served as asked, or its body could not be read (code says why)",
    401: "no valid API key",
    404: "no such run for this API key's tenant",
    409: "the run is not in a state that allows this, or the Idempotency-Key was used "
    "with a different body",
    413: "the request body is too large",
    422: "the request is invalid (details say where), or names a model outside the model "
    "catalogue (UNKNOWN_MODEL; details list the allowed models)",
    429: "rate limit of this API key exceeded, or, where a run is started, its tenant's cap of "
    "runs in flight (API_MAX_RUNS_IN_FLIGHT), or, for the synchronous endpoints, its cap of "
    "open requests (API_SYNC_MAX_PER_TENANT), or, for the event stream, the caps of open "
    "streams (API_MAX_STREAMS_PER_KEY, API_MAX_STREAMS_PER_REPLICA)",
    500: "unexpected server error",
    502: "the LLM refused this server's credentials (LLM_AUTH_ERROR), answered with unusable "
    "output (LLM_BAD_OUTPUT) or rejected the request (LLM_ERROR)",
    503: "the LLM is rate-limiting, failing, unreachable or not configured (LLM_UNAVAILABLE, "
    "LLM_NOT_CONFIGURED), or this deployment's share of the model's rate limit is used up "
    "for now (LLM_CAPACITY); Retry-After when known",
    504: "not done within API_SYNC_TIMEOUT_SECONDS",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route: those every one may give, plus ``statuses``."""
    return {
        status: {"model": ErrorEnvelope, "description": _ERROR_DESCRIPTIONS[status]}
        for status in (401, 422, 429, 500, *statuses)
    }


def json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The same, spelled out as JSON for a route whose own answers are not JSON (with
    ``model``, FastAPI would document them under the route's media type)."""
    schema = {"$ref": "#/components/schemas/ErrorEnvelope"}
    return {
        status: {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": schema}},
        }
        for status in (401, 422, 429, 500, *statuses)
    }


_RUN_ID = {"run_id": "$response.body#/run_id"}
RUN_LINKS: dict[str, Any] = {
    name: {"operationId": operation, "parameters": _RUN_ID}
    for name, operation in (
        ("GetRun", "get_run"),
        ("ReviseRun", "revise_run"),
        ("CancelRun", "cancel_run"),
        ("RetryRun", "retry_run"),
    )
}
"""OpenAPI links: where a new run's id can be used next (clients and test generators
follow them). Not the event stream: it stays open until the run ends."""
