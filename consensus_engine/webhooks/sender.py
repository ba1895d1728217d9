"""One HTTP attempt at a delivery: signed, bounded in time and in what is read back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx2

from consensus_engine.webhooks.signing import sign
from consensus_engine.webhooks.targets import RefusedTarget, check_target

MAX_RESPONSE_BYTES = 16_384
"""Read no more of an endpoint's answer than this: only its status matters."""
USER_AGENT = "consensus-engine-webhooks/1"


@dataclass(frozen=True)
class Answer:
    """How an attempt ended: the status code, or why there is none."""

    status_code: int | None
    latency_ms: float
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def post(
    url: str,
    secret: str,
    message_id: str,
    payload: dict[str, Any],
    *,
    timeout: float,
    allow_private: bool,
) -> Answer:
    """POST the payload once. Redirects are not followed (a redirect could lead inside the
    network), and the target is checked again first, against what its name resolves to now."""
    started = time.monotonic()
    try:
        check_target(url, allow_private=allow_private)
    except RefusedTarget as refused:
        return Answer(None, 0.0, f"refused: {refused}")
    body = body_of(payload)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }
    try:
        with (
            httpx2.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            read = 0
            for chunk in response.iter_bytes():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
            status = response.status_code
    except httpx2.TimeoutException:
        return Answer(None, _ms(started), f"no answer within {timeout:g} s")
    except httpx2.HTTPError as error:
        return Answer(None, _ms(started), f"{type(error).__name__}: {str(error)[:200]}")
    return Answer(status, _ms(started))


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
