"""Reading a queue's dead letters back, so that they can be acted on rather than kept.

Two kinds arrive on a queue's dead-letter topic: messages Dramatiq failed (the broker
publishes them with ``dead_letter_reason``), and messages Pub/Sub itself moved after
``max_delivery_attempts`` deliveries without an ack (they carry
``CloudPubSubDeadLetterSourceDeliveryCount``). A crash or a restart counts a delivery for
every message a worker held, so the latter may never have run at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.errors import DecodeError
from google.api_core import exceptions as gexc
from google.pubsub_v1 import types

from brokers.pubsub.clients import Clients, bounded_retry

NATIVE_COUNT_ATTRIBUTE = "CloudPubSubDeadLetterSourceDeliveryCount"
REASON_ATTRIBUTE = "dead_letter_reason"
_LOOK_SECONDS = 1.0


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message, leased to whoever pulled it until it is acked."""

    ack_id: str
    message: dramatiq.Message[Any] | None
    """``None`` when the data is not a Dramatiq message."""
    reason: str
    """Why it was dead-lettered, for people and logs."""

    @classmethod
    def from_received(cls, received: types.ReceivedMessage) -> DeadLetter:
        attributes = received.message.attributes
        try:
            message: dramatiq.Message[Any] | None = dramatiq.Message.decode(received.message.data)
        except DecodeError:
            message = None
        if NATIVE_COUNT_ATTRIBUTE in attributes:
            reason = f"not acked after {attributes[NATIVE_COUNT_ATTRIBUTE]} deliveries"
        else:
            reason = attributes.get(REASON_ATTRIBUTE, "no reason recorded")
        return cls(received.ack_id, message, reason)


def pull(
    clients: Clients, subscription_path: str, *, max_messages: int, timeout: float
) -> list[DeadLetter]:
    """Up to ``max_messages`` dead letters; those not acked come back after the ack deadline.

    It waits at most ``_LOOK_SECONDS`` for letters (Pub/Sub holds an empty pull open):
    whoever polls the dead letters polls again.
    """
    try:
        response = clients.subscriber.pull(
            request={"subscription": subscription_path, "max_messages": max_messages},
            timeout=min(timeout, _LOOK_SECONDS),
            retry=None,
        )
    except gexc.DeadlineExceeded:
        return []
    return [DeadLetter.from_received(received) for received in response.received_messages]


def ack(
    clients: Clients, subscription_path: str, letters: list[DeadLetter], *, timeout: float
) -> None:
    """Settle letters that were dealt with; they leave the dead-letter subscription."""
    if letters:
        clients.subscriber.acknowledge(
            request={"subscription": subscription_path, "ack_ids": [d.ack_id for d in letters]},
            timeout=timeout,
            retry=bounded_retry(timeout),
        )
