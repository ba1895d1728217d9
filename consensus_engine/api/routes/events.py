"""Following a run: Server-Sent Events of its step and status changes.

The stream reads the run's state from the database when woken by a change
(``api/run_changes.py``: pushed by PostgreSQL, polled where it cannot be) and compares it
with what it sent. Streams are capped per API key and per replica
(``api/stream_limits.py``). The event models live here: only this stream sends them, and
they are not part of the OpenAPI schema.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from consensus_engine.api.openapi import json_errors
from consensus_engine.api.state import ApiState, PrincipalDep, StateDep
from consensus_engine.api.tenancy import owned
from consensus_engine.db import reads
from consensus_engine.domain.runs import RunStatus, StepStatus, persona_of_step
from consensus_engine.domain.schemas import DecisionLabel

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
"""A comment line at least this often keeps proxies from closing a quiet stream."""

router = APIRouter(prefix="/v1", tags=["runs"])


class StepEvent(BaseModel):
    """``event: step`` (and each entry of a snapshot's ``steps``)."""

    step_name: str
    persona_id: str | None
    status: StepStatus
    attempts: int
    error: str | None


class StatusEvent(BaseModel):
    """``event: status`` and ``event: end`` (the final status, after which the stream closes)."""

    run_id: uuid.UUID
    status: RunStatus
    error_code: str | None
    decision: DecisionLabel | None
    overall_score: float | None


class SnapshotEvent(StatusEvent):
    """``event: snapshot``: the first event, the whole state at connection time."""

    steps: list[StepEvent]


async def _stream_slot(state: StateDep, principal: PrincipalDep) -> AsyncIterator[None]:
    """429 past the caps; the slot is given back when the stream ends, however it ends."""
    with state.streams.held(principal.key_id):
        yield


def _followed_run(run_id: uuid.UUID, state: StateDep, principal: PrincipalDep) -> uuid.UUID:
    """404 before the stream starts: once it has, the status code can no longer change."""
    with state.sessions() as session:
        owned(session, run_id, principal.tenant)
    return run_id


def _poll(state: ApiState, run_id: uuid.UUID, tenant: str) -> reads.RunProgress | None:
    with state.sessions() as session:
        return reads.run_progress(session, run_id, tenant=tenant)


def _step_event(step: reads.StepState) -> StepEvent:
    return StepEvent(
        step_name=step.step_name,
        persona_id=persona_of_step(step.step_name),
        status=step.status,
        attempts=step.attempts,
        error=step.error,
    )


def _status_event(run_id: uuid.UUID, progress: reads.RunProgress) -> StatusEvent:
    return StatusEvent(
        run_id=run_id,
        status=progress.status,
        error_code=progress.error_code,
        decision=progress.decision,
        overall_score=progress.overall_score,
    )


@router.get(
    "/runs/{run_id}/events",
    operation_id="follow_run",
    response_class=EventSourceResponse,
    summary="Follow a run: Server-Sent Events of its step and status changes",
    responses=json_errors(404),
    dependencies=[Depends(_stream_slot)],
)
async def follow_run(
    run_id: Annotated[uuid.UUID, Depends(_followed_run)],
    state: StateDep,
    principal: PrincipalDep,
) -> AsyncIterator[ServerSentEvent]:
    """Events, each with JSON ``data``: first ``snapshot`` (status and every step), then
    ``step`` (a step's status or attempts changed) and ``status`` (the run's status
    changed) as they happen, and finally ``end`` (the terminal status), after which the
    stream closes. A ``: heartbeat`` comment comes every 15 s when nothing changes.
    The run is read when PostgreSQL announces a change to it, and every 5 s regardless
    (every 0.25 s where changes cannot be pushed: SQLite, pg8000); reading stops when the
    client disconnects. An API key may follow ``API_MAX_STREAMS_PER_KEY`` runs at once and
    an API replica serves at most ``API_MAX_STREAMS_PER_REPLICA`` streams; beyond either,
    429 ``TOO_MANY_STREAMS``."""
    tenant = principal.tenant
    counter = 0

    def event(name: str, data: Any) -> ServerSentEvent:
        nonlocal counter
        counter += 1
        return ServerSentEvent(event=name, data=data, id=str(counter))

    changes = state.run_changes
    with changes.watch(run_id) as watch:  # before the first read: no change slips between
        progress = await run_in_threadpool(_poll, state, run_id, tenant)
        if progress is None:  # deleted since the check
            return
        yield event(
            "snapshot",
            SnapshotEvent(
                **_status_event(run_id, progress).model_dump(),
                steps=[_step_event(step) for step in progress.steps],
            ),
        )
        last_beat = time.monotonic()
        while not progress.status.is_terminal:
            beat_at = last_beat + HEARTBEAT_SECONDS
            await watch.changed(
                within=max(0.0, min(changes.reread_seconds, beat_at - time.monotonic()))
            )
            try:
                current = await run_in_threadpool(_poll, state, run_id, tenant)
            except SQLAlchemyError as error:
                logger.warning("progress stream of run %s: database read failed: %s", run_id, error)
                current = progress  # nothing new to send; the next read may do better
            if current is None:
                return
            seen = {(s.step_name, s.status, s.attempts) for s in progress.steps}
            updates = [s for s in current.steps if (s.step_name, s.status, s.attempts) not in seen]
            for step in updates:
                yield event("step", _step_event(step))
            if current.status is not progress.status:
                yield event("status", _status_event(run_id, current))
            if updates or current.status is not progress.status:
                last_beat = time.monotonic()
            elif time.monotonic() >= beat_at:
                last_beat = time.monotonic()
                yield ServerSentEvent(comment="heartbeat")
            progress = current
    yield event("end", _status_event(run_id, progress))
