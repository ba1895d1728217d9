"""The answer to a request that stored a run: where it is, and whether it was enqueued.

The run is committed before it is published. If the publish fails the run is not lost:
the answer is still 2xx with ``"enqueued": false``, and the worker's sweeper sends any
queued run whose publish was never confirmed (``SWEEPER_REQUEUE_AFTER_SECONDS``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

from consensus_engine.api.presenters import accepted_fields, run_path
from consensus_engine.pipeline.service import Accepted


def accepted(response: Response, outcome: Accepted, requeue_after: float) -> dict[str, Any]:
    """The fields of ``RunAccepted`` (and its subclasses); ``Location`` names the run, and a
    replayed request answers 200, marked as a replay."""
    run = outcome.run
    response.headers["Location"] = run_path(run.id)
    if not outcome.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
        message = "an earlier request with this Idempotency-Key created this run; nothing new"
    elif outcome.enqueued:
        message = "the run is queued; follow it at links.events"
    else:
        message = (
            "the run is stored but could not be queued just now; it was not sent yet, and the "
            f"sweeper will enqueue it (about {requeue_after:g} s after it was created)"
        )
    return accepted_fields(run, outcome.enqueued, message)
