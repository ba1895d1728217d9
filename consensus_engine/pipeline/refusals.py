"""Why the run service refuses a request; each layer above words it for its users."""

from __future__ import annotations

import uuid

from consensus_engine.domain.budgets import Standing


class RunRefused(Exception):
    """The request cannot be carried out; the message says why, without echoing input."""


class RunNotFound(RunRefused, LookupError):
    """No such run for this tenant (another tenant's run looks exactly the same)."""

    def __init__(self, run_id: uuid.UUID) -> None:
        super().__init__(f"no run {run_id}")
        self.run_id = run_id


class RunStateConflict(RunRefused):
    """The run is not in a state that allows this."""

    def __init__(self, message: str, *, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class IdempotencyConflict(RunRefused):
    """The Idempotency-Key was already used with a different request."""

    def __init__(self, run_id: uuid.UUID) -> None:
        super().__init__("this Idempotency-Key was already used with a different request")
        self.run_id = run_id


class TooManyRunsInFlight(RunRefused):
    """The tenant's cap on queued plus running runs is reached."""

    def __init__(self, in_flight: int, limit: int) -> None:
        super().__init__(
            f"this tenant already has {in_flight} runs queued or running (limit {limit}); "
            "wait for some to finish"
        )
        self.in_flight = in_flight
        self.limit = limit


class InvalidRevision(RunRefused, ValueError):
    """A revision's input does not fit its parent run; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class BudgetExceeded(RunRefused):
    """The tenant used up one of its budget's limits; it starts over at ``standing.resets_at``."""

    def __init__(self, standing: Standing) -> None:
        super().__init__(f"this tenant's budget is used up: {standing}")
        self.standing = standing
