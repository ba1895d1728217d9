"""Operations: liveness and readiness; no API key needed, nothing revealed.

The metrics are not here: they have a port of their own (``API_METRICS_PORT``).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from consensus_engine import readiness
from consensus_engine.api.state import StateDep

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "failing"]
    checks: dict[str, Literal["ok", "unavailable"]]


# Both probes are coroutines: they never wait for a worker thread, so no amount of work
# on the API's threads keeps them from answering.
@router.get("/health", summary="Liveness: the process answers")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    summary="Readiness: the database and the broker answer",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency does not answer"}},
)
async def ready(state: StateDep) -> JSONResponse:
    checks = readiness.checks(lambda: state.engine, state.broker)
    status, body = await asyncio.to_thread(readiness.report, checks)
    return JSONResponse(body, status_code=status)
