"""The events an endpoint may choose, and the payload each carries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consensus_engine.domain.runs import RunStatus

RUN_EVENTS: dict[RunStatus, str] = {
    RunStatus.COMPLETED: "run.completed",
    RunStatus.FAILED: "run.failed",
    RunStatus.CANCELLED: "run.cancelled",
}
EVENTS: tuple[str, ...] = tuple(RUN_EVENTS.values())


def run_event(
    event: str,
    *,
    run_id: str,
    status: str,
    decision: str | None,
    overall_score: float | None,
    error_code: str | None,
    at: datetime,
) -> dict[str, Any]:
    """The Standard Webhooks payload of a run's event: ``type``, ``timestamp``, ``data``."""
    return {
        "type": event,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "data": {
            "run_id": run_id,
            "status": status,
            "decision": decision,
            "overall_score": overall_score,
            "error_code": error_code,
            "links": {"self": f"/v1/runs/{run_id}"},
        },
    }
