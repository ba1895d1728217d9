"""Every run belongs to the tenant of the API key that created it.

Another tenant's run answers 404, exactly like a run that does not exist, so ids reveal
nothing; and each tenant has its own cap on runs in flight.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from consensus_engine.api.errors import ApiError
from consensus_engine.api.state import ApiState
from consensus_engine.db import queries, repository
from consensus_engine.db.models import Run


def not_found(run_id: uuid.UUID) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"no run {run_id}", details={"run_id": str(run_id)})


def owned(session: Session, run_id: uuid.UUID, tenant: str) -> Run:
    """The tenant's run, or the 404 a missing run gets."""
    run = repository.get_run(session, run_id, tenant=tenant)
    if run is None:
        raise not_found(run_id)
    return run


def check_capacity(session: Session, state: ApiState, tenant: str) -> None:
    """The tenant's cap on queued plus running runs.

    Checked before the insert, without a lock: two requests racing for the last slot may
    both pass, so the cap can be overshot by the number of concurrent submissions.
    """
    cap = state.settings.api_max_runs_in_flight
    in_flight = queries.count_in_flight(session, tenant=tenant)
    if in_flight >= cap:
        raise ApiError(
            429,
            "TOO_MANY_RUNS_IN_FLIGHT",
            f"this tenant already has {in_flight} runs queued or running (limit {cap}); "
            "wait for some to finish",
            details={"in_flight": in_flight, "limit": cap},
        )
