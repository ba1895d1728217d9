"""Steering a run that exists: cancel it, or retry it after it failed."""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Response

from consensus_engine.api.accepted import accepted
from consensus_engine.api.openapi import errors
from consensus_engine.api.schemas import RetryAccepted, RunStatusResponse
from consensus_engine.api.state import PrincipalDep, StateDep
from consensus_engine.api.tenancy import refusal
from consensus_engine.pipeline.refusals import RunRefused
from consensus_engine.webhooks import messages as webhook_messages

router = APIRouter(prefix="/v1", tags=["runs"])
logger = logging.getLogger(__name__)


@router.post(
    "/runs/{run_id}/cancel",
    operation_id="cancel_run",
    response_model=RunStatusResponse,
    summary="Cancel a queued or running run",
    responses=errors(404, 409, 413),
)
def cancel(run_id: uuid.UUID, state: StateDep, principal: PrincipalDep) -> RunStatusResponse:
    """No further step starts; a step already running finishes and its result is dropped.
    The tenant's ``run.cancelled`` webhooks are sent now (or by the next sweep)."""
    try:
        run = state.runs.cancel(run_id, tenant=principal.tenant)
    except RunRefused as error:
        raise refusal(error) from None
    try:
        webhook_messages.send_due(state.broker, state.settings, state.sessions, run_id=run.id)
    except Exception:  # the deliveries are stored: the sweeper sends them
        logger.warning("Could not send the webhooks of cancelled run %s now.", run.id)
    return RunStatusResponse(
        run_id=run.id, status=run.status, completed_at=run.completed_at, error_code=run.error_code
    )


@router.post(
    "/runs/{run_id}/retry",
    operation_id="retry_run",
    status_code=202,
    response_model=RetryAccepted,
    summary="Retry a failed run, re-running only the steps that did not complete",
    responses=errors(404, 409, 413),
)
def retry(
    run_id: uuid.UUID, response: Response, state: StateDep, principal: PrincipalDep
) -> RetryAccepted:
    """Completed steps (the proposal, the reviews that succeeded) are kept; the run gets a
    fresh time limit (WORKER_JOB_TIMEOUT_SECONDS)."""
    try:
        outcome = state.runs.retry(run_id, tenant=principal.tenant)
    except RunRefused as error:
        raise refusal(error) from None
    fields = accepted(response, outcome, state.settings.sweeper_requeue_after_seconds)
    return RetryAccepted(**fields, steps=list(outcome.steps))
