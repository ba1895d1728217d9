"""Resource names, pages, timestamps and subscription bounds, as Google's service words them.

Clients and tests match on these codes and messages, so they follow the emulator jar.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Container

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.pubsub_v1.types import pubsub

Code = grpc.StatusCode
DEFAULT_RETENTION_S = 7 * 24 * 3600
DELETED_TOPIC = "_deleted-topic_"
_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_NAME = re.compile(r"projects/([^/]*)/(topics|subscriptions)/(.*)")


class RpcError(Exception):
    """``RpcError(code, details)``, raised by a handler: the gRPC status the client sees."""


def split_name(name: str, kind: str) -> tuple[str, str]:
    """(project, id) of a ``topics`` or ``subscriptions`` name, or INVALID_ARGUMENT."""
    match = _NAME.fullmatch(name)
    if not match or match[2] != kind or not _ID.fullmatch(match[3]) or match[3].startswith("goog"):
        raise RpcError(Code.INVALID_ARGUMENT, f"Invalid [{kind}] name: (name={name})")
    return match[1], match[3]


def rfc3339(seconds: float) -> str:
    """A timestamp as dead-letter attributes carry it (milliseconds, UTC)."""
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def page_of(names: list[str], size: int, token: str) -> tuple[list[str], str]:
    """One page of sorted names; the token is the next offset."""
    start = int(token) if token.isdigit() else 0
    end = start + size if size > 0 else len(names)
    return names[start:end], str(end) if end < len(names) else ""


def apply_subscription_defaults(config: pubsub.Subscription, topics: Container[str]) -> None:
    """Fill in defaults and check bounds as the real service does; ``topics`` are the
    existing ones (a dead-letter topic must be among them)."""
    if config.ack_deadline_seconds == 0:
        config.ack_deadline_seconds = 10
    if not 10 <= config.ack_deadline_seconds <= 600:
        raise RpcError(Code.INVALID_ARGUMENT, "ack_deadline_secs out of bounds")
    policy = config.dead_letter_policy
    if policy.dead_letter_topic:
        split_name(policy.dead_letter_topic, "topics")
        if policy.dead_letter_topic not in topics:
            raise RpcError(Code.NOT_FOUND, "Dead letter topic not found")
        attempts = policy.max_delivery_attempts or 5
        if not 5 <= attempts <= 100:
            raise RpcError(Code.OUT_OF_RANGE, f"max_delivery_attempts {attempts} not in 5..100")
        policy.max_delivery_attempts = attempts
    if not config.message_retention_duration:
        config.message_retention_duration = dt.timedelta(seconds=DEFAULT_RETENTION_S)
