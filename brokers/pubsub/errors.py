"""Errors the Pub/Sub broker raises on top of Dramatiq's own."""

from __future__ import annotations

from dramatiq.errors import BrokerError, ConnectionClosed, DramatiqError


class _Described:
    """A typed constructor for Dramatiq's errors, which keep their text in ``message``."""

    def __init__(self, message: str) -> None:
        DramatiqError.__init__(self, message)  # type: ignore[arg-type]


class InvalidQueueName(_Described, BrokerError, ValueError):
    """A queue name cannot be mapped onto valid, collision-free Pub/Sub resource names."""


class MessageTooLarge(_Described, BrokerError, ValueError):
    """The encoded message is over Pub/Sub's size limit; it was not sent."""


class DelayTooLong(_Described, BrokerError, ValueError):
    """The delay is longer than a parked message can be kept for."""


class PublishFailed(_Described, ConnectionClosed):
    """Pub/Sub did not confirm a publish in time or refused it."""


class ResourceMissing(_Described, ConnectionClosed):
    """A topic or subscription does not exist and the broker may not create it."""
