"""``Idempotency-Key``: a client may repeat a request safely.

A request repeating the key of an earlier request of the same tenant, with the same body,
creates nothing and answers **200** with that run (its current status); the same key with
a different body answers 409. Keys are kept as long as the run is. The run service keeps
the rule; this module reads the header and fingerprints the request.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header
from pydantic import BaseModel

from consensus_engine.pipeline.service import Idempotency

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="repeat it to retry safely: the same body gets the same run back (200)",
    ),
]


def idempotency(key: str | None, kind: str, body: Any) -> Idempotency | None:
    """What an Idempotency-Key is bound to: the endpoint and the parsed body (defaults
    included, so leaving out a default and spelling it out count as the same request).
    ``body`` is the request model, dumped only when there is a key, or its JSON form."""
    if key is None:
        return None
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    canonical = json.dumps([kind, body], sort_keys=True, separators=(",", ":"), default=str)
    return Idempotency(key, hashlib.sha256(canonical.encode()).hexdigest())
