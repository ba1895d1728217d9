"""What the API process holds for its whole life, and the per-request dependencies.

One engine (pool), one broker (publisher), one key ring, one rate limiter, the
synchronous endpoints' LLM client and pool, and the event streams' caps and listener per
process; one database session per request.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import dramatiq
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.api.auth import KeyRing, Principal
from consensus_engine.api.errors import ApiError
from consensus_engine.api.limits import RateLimiter
from consensus_engine.api.run_changes import RunChanges
from consensus_engine.api.stream_limits import StreamLimits
from consensus_engine.api.sync_runtime import SyncRuntime
from consensus_engine.domain.personas import PersonaSet
from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.pipeline.service import RunService
from consensus_engine.settings import Settings


@dataclass
class ApiState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    broker: dramatiq.Broker
    keys: KeyRing
    limiter: RateLimiter
    personas: PersonaSet
    catalogue: ModelCatalogue
    sync: SyncRuntime
    runs: RunService
    streams: StreamLimits
    run_changes: RunChanges


async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """A session for this request; the route commits what it means to keep."""
    with state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


_BEARER = HTTPBearer(
    bearerFormat="ce_<key>",
    description="An API key: 'Authorization: Bearer ce_...'.",
    auto_error=False,
)


async def get_principal(
    request: Request,
    state: StateDep,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
) -> Principal:
    """The caller, after the key check and the rate limit (429 with ``Retry-After``).

    Both take microseconds and no I/O, so this runs on the event loop: a thread-pool hop
    would cost more than the check.

    ``_documented`` only declares the bearer scheme in the OpenAPI schema; the raw header
    is checked here, so a wrong scheme is refused even where keys are optional.
    """
    principal = state.keys.authenticate(request.headers.get("authorization"))
    if principal is None:
        raise ApiError(
            401,
            "UNAUTHORIZED",
            "a valid API key is required: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait = state.limiter.acquire(principal.key_id)
    if wait > 0:
        # Rounded up: a client that waits as told finds a token, never another 429.
        retry_after = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "RATE_LIMITED",
            "too many requests for this API key; slow down",
            details={"retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
