"""Pub/Sub resource names for Dramatiq queues.

Queue ``q`` uses topic ``q``, subscription ``q-sub`` and dead-letter topic
``q-dlq`` (with subscription ``q-dlq-sub`` so dead letters are kept); its
delay queue ``q.DQ`` gets the same treatment. Every id may carry a namespace
prefix, so that tests or tenants can share a project. Topic and subscription
ids live in separate namespaces in Pub/Sub, so ``q-sub`` never clashes with a
topic; the only possible clash, a queue named ``x-dlq`` against the dead-letter
topic of ``x``, is refused up front.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from dramatiq.common import dq_name, q_name

from brokers.pubsub.errors import InvalidQueueName

SUBSCRIPTION_SUFFIX = "-sub"
DEAD_LETTER_SUFFIX = "-dlq"

# Pub/Sub: 3-255 characters, starting with a letter, not starting with "goog".
_RESOURCE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")


def validate_resource_id(resource_id: str, *, kind: str) -> str:
    """Refuse an id Pub/Sub would reject, with a message that says which rule failed."""
    if resource_id.lower().startswith("goog"):
        raise InvalidQueueName(f"{kind} id {resource_id!r} must not start with 'goog'")
    if not _RESOURCE_ID.match(resource_id):
        raise InvalidQueueName(
            f"{kind} id {resource_id!r} is invalid: Pub/Sub ids are 3-255 characters, start "
            "with a letter and use only letters, digits and - _ . ~ + %"
        )
    return resource_id


@dataclass(frozen=True)
class QueueResources:
    """Every Pub/Sub id one Dramatiq queue (or delay queue) uses."""

    queue_name: str
    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letter_subscription: str


@dataclass(frozen=True)
class NameScheme:
    """Maps queue names to resource ids: ``namespace + queue + suffix``.

    ``subscription_overrides`` lets a deployment keep an existing subscription
    name for a queue (the canonical queue name, not the ``.DQ`` one).
    """

    namespace: str = ""
    subscription_overrides: Mapping[str, str] | None = None

    def resources(self, queue_name: str) -> QueueResources:
        canonical = q_name(queue_name)
        if canonical.endswith(DEAD_LETTER_SUFFIX):
            raise InvalidQueueName(
                f"queue name {canonical!r} ends with {DEAD_LETTER_SUFFIX!r}, which is reserved "
                "for dead-letter topics"
            )
        topic = self.namespace + queue_name
        override = (self.subscription_overrides or {}).get(canonical)
        if override is not None and queue_name == canonical:
            subscription = self.namespace + override
        else:
            subscription = topic + SUBSCRIPTION_SUFFIX
        dead_letter = topic + DEAD_LETTER_SUFFIX
        return QueueResources(
            queue_name=queue_name,
            topic=validate_resource_id(topic, kind="topic"),
            subscription=validate_resource_id(subscription, kind="subscription"),
            dead_letter_topic=validate_resource_id(dead_letter, kind="topic"),
            dead_letter_subscription=validate_resource_id(
                dead_letter + SUBSCRIPTION_SUFFIX, kind="subscription"
            ),
        )

    def delay_resources(self, queue_name: str) -> QueueResources:
        return self.resources(dq_name(q_name(queue_name)))
