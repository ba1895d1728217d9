"""Every run belongs to the tenant of the API key that created it.

Another tenant's run answers 404, exactly like a run that does not exist, so ids reveal
nothing; the run service's refusals become the API's errors here.
"""

from __future__ import annotations

import math
import uuid

from sqlalchemy.orm import Session

from consensus_engine.api.errors import ApiError, conflict, invalid
from consensus_engine.db import reads
from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.pipeline.budget_gate import CallOverBudget
from consensus_engine.pipeline.refusals import (
    BudgetExceeded,
    IdempotencyConflict,
    InvalidRevision,
    RunNotFound,
    RunRefused,
    RunStateConflict,
    TooManyRunsInFlight,
)


def not_found(run_id: uuid.UUID) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"no run {run_id}", details={"run_id": str(run_id)})


def owned(session: Session, run_id: uuid.UUID, tenant: str) -> Run:
    """The tenant's run, or the 404 a missing run gets."""
    run = reads.get_run(session, run_id, tenant=tenant)
    if run is None:
        raise not_found(run_id)
    return run


def refusal(error: RunRefused) -> ApiError:
    """The answer to a request the run service refused."""
    if isinstance(error, RunNotFound):
        return not_found(error.run_id)
    if isinstance(error, InvalidRevision):
        return invalid(error.field, str(error))
    if isinstance(error, IdempotencyConflict):
        return conflict(str(error), run_id=str(error.run_id))
    if isinstance(error, BudgetExceeded):
        return budget_exceeded(error)
    if isinstance(error, TooManyRunsInFlight):
        return ApiError(
            429,
            "TOO_MANY_RUNS_IN_FLIGHT",
            str(error),
            details={"in_flight": error.in_flight, "limit": error.limit},
        )
    if isinstance(error, RunStateConflict) and error.status is not None:
        return conflict(str(error), status=error.status)
    return conflict(str(error))


def budget_exceeded(error: BudgetExceeded | CallOverBudget) -> ApiError:
    """429 naming the used-up (or about to be crossed) limit and when it resets (also as
    ``Retry-After``)."""
    standing = error.standing
    wait = max(1, math.ceil((standing.resets_at - utcnow()).total_seconds()))
    return ApiError(
        429,
        "BUDGET_EXCEEDED",
        str(error),
        details={
            "limit": standing.limit.value,
            "allowed": str(standing.allowed),
            "used": str(standing.used),
            "resets_at": standing.resets_at.isoformat(),
        },
        headers={"Retry-After": str(wait)},
    )
