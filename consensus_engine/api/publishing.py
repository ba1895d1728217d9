"""Sending a committed run's messages, and saying in the answer whether that worked.

The run is stored and committed first, published second. If the publish fails the run is
not lost: the answer is still 2xx with ``"enqueued": false``, and the worker's sweeper
sends any queued run whose publish was never confirmed (``SWEEPER_REQUEUE_AFTER_SECONDS``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import Response
from sqlalchemy.exc import SQLAlchemyError

from consensus_engine import jobs
from consensus_engine.api.presenters import accepted_fields, run_path
from consensus_engine.api.state import ApiState
from consensus_engine.db.models import Run
from consensus_engine.pipeline.submit import mark_enqueued

logger = logging.getLogger(__name__)


def _sent(state: ApiState, run: Run, send: Callable[[], object]) -> bool:
    """Send the run's messages, then record the confirmation; ``False`` if the send failed.

    A failed send leaves ``last_enqueued_at`` empty, which is how the sweeper knows to
    send it later; the run itself is already committed.
    """
    try:
        send()
    except Exception:
        logger.exception("publishing run %s failed; the sweeper will enqueue it", run.id)
        return False
    try:
        with state.sessions.begin() as session:
            mark_enqueued(session, run.id)
    except SQLAlchemyError:
        # Sent but not recorded: the sweeper may send it again, which claims make harmless.
        logger.exception("run %s was enqueued but recording that failed", run.id)
    return True


def _enqueue_message(enqueued: bool, requeue_after: float) -> str:
    if enqueued:
        return "the run is queued; follow it at links.events"
    return (
        "the run is stored but could not be queued just now; it was not sent yet, and the "
        f"sweeper will enqueue it (about {requeue_after:g} s after it was created)"
    )


def publish(
    state: ApiState, response: Response, run: Run, send: Callable[[], object]
) -> dict[str, Any]:
    """Publish the committed run with ``send``; the accepted answer's fields, whose
    ``enqueued`` says whether that worked. ``Location`` names the run."""
    enqueued = _sent(state, run, send)
    message = _enqueue_message(enqueued, state.settings.sweeper_requeue_after_seconds)
    response.headers["Location"] = run_path(run.id)
    return accepted_fields(run, enqueued, message)


def publish_new(state: ApiState, response: Response, run: Run) -> dict[str, Any]:
    """:func:`publish` for a new run: its first message (expand)."""
    return publish(
        state,
        response,
        run,
        lambda: jobs.enqueue_run(state.broker, state.settings, run.id, run.priority),
    )


