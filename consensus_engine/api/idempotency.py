"""``Idempotency-Key``: a client may repeat a request safely.

A request repeating the key of an earlier request of the same tenant, with the same body,
creates nothing and answers **200** with that run (its current status); the same key with
a different body answers 409. Keys are kept as long as the run is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consensus_engine.api.errors import conflict
from consensus_engine.api.presenters import accepted_fields, run_path
from consensus_engine.db import queries
from consensus_engine.db.models import Run

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="repeat it to retry safely: the same body gets the same run back (200)",
    ),
]

_FINGERPRINT = "request_sha256"
"""The run parameter that keeps the fingerprint of the request that created the run."""


def request_fingerprint(kind: str, body: Any) -> str:
    """What an Idempotency-Key is bound to: the endpoint and the parsed body (defaults
    included, so leaving out a default and spelling it out count as the same request)."""
    canonical = json.dumps([kind, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def replayed(session: Session, tenant: str, key: str, fingerprint: str) -> Run | None:
    """The run an earlier request with this key created, or ``None``; 409 on another body."""
    run = queries.find_by_idempotency_key(session, tenant=tenant, key=key)
    if run is None:
        return None
    if run.parameters.get(_FINGERPRINT) != fingerprint:
        raise conflict(
            "this Idempotency-Key was already used with a different request",
            run_id=str(run.id),
        )
    return run


def store(
    session: Session,
    tenant: str,
    key: str | None,
    fingerprint: str,
    create: Callable[[], Run],
) -> tuple[Run, bool]:
    """Create the run and commit, or find the one a concurrent request with the same key
    created.

    ``create`` writes inside a savepoint, so a lost race on the key's unique constraint
    leaves this transaction usable for the look-up. Returns (run, created).
    """
    try:
        run = create()
    except IntegrityError:
        if key is None:
            raise
        existing = replayed(session, tenant, key, fingerprint)
        if existing is None:
            raise
        return existing, False
    run.parameters = {**run.parameters, _FINGERPRINT: fingerprint}
    session.commit()
    return run, True


def replay(response: Response, run: Run) -> dict[str, Any]:
    """Answer a repeated request with the run it created: 200, marked as a replay."""
    response.headers["Location"] = run_path(run.id)
    response.status_code = 200
    response.headers["Idempotent-Replayed"] = "true"
    enqueued = run.last_enqueued_at is not None
    message = "an earlier request with this Idempotency-Key created this run; nothing new"
    return accepted_fields(run, enqueued, message)
