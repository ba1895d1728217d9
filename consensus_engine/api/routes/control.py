"""Steering a run that exists: cancel it, or retry it after it failed."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from consensus_engine import jobs
from consensus_engine.api.errors import conflict
from consensus_engine.api.openapi import errors
from consensus_engine.api.publishing import publish
from consensus_engine.api.schemas import RetryAccepted, RunStatusResponse
from consensus_engine.api.state import PrincipalDep, SessionDep, StateDep
from consensus_engine.api.tenancy import check_capacity, not_found, owned
from consensus_engine.domain.runs import RunStatus
from consensus_engine.pipeline.control import RunStateConflict, cancel_run, retry_run

router = APIRouter(prefix="/v1", tags=["runs"])


@router.post(
    "/runs/{run_id}/cancel",
    operation_id="cancel_run",
    response_model=RunStatusResponse,
    summary="Cancel a queued or running run",
    responses=errors(404, 409, 413),
)
def cancel(run_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> RunStatusResponse:
    """No further step starts; a step already running finishes and its result is dropped."""
    owned(session, run_id, principal.tenant)
    try:
        run = cancel_run(session, run_id)
    except RunStateConflict as error:
        raise conflict(str(error)) from None
    except LookupError:
        raise not_found(run_id) from None
    session.commit()
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
    run_id: uuid.UUID,
    response: Response,
    state: StateDep,
    session: SessionDep,
    principal: PrincipalDep,
) -> RetryAccepted:
    """Completed steps (the proposal, the reviews that succeeded) are kept; the run gets a
    fresh time limit (WORKER_JOB_TIMEOUT_SECONDS)."""
    settings = state.settings
    run = owned(session, run_id, principal.tenant)
    if run.status is not RunStatus.FAILED:
        raise conflict(
            f"only a failed run can be retried; this one is {run.status.value}",
            status=run.status.value,
        )
    check_capacity(session, state, principal.tenant)
    try:
        found = retry_run(session, run_id, job_timeout_seconds=settings.worker_job_timeout_seconds)
    except RunStateConflict as error:
        raise conflict(str(error)) from None
    except LookupError:
        raise not_found(run_id) from None
    steps = [step.step_name for step in run.steps if not step.status.is_terminal]
    session.commit()
    fields = publish(
        state, response, run, lambda: jobs.send_jobs(state.broker, state.settings, found)
    )
    return RetryAccepted(**fields, steps=steps)
