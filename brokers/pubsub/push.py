"""Push delivery: Pub/Sub POSTs each message to the worker instead of a stream.

On Cloud Run, Pub/Sub sends every message as an HTTP request and reads the
answer as the ack (2xx) or a nack (anything else). The request thread hands the
message to the consumer of its queue and waits while the same Dramatiq worker,
actors and middleware as in pull mode process it; the consumer's ack, nack or
requeue decides the answer. The HTTP server itself lives with the application.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.common import q_name
from dramatiq.errors import ActorNotFound, ConnectionClosed, DecodeError

if TYPE_CHECKING:
    from brokers.pubsub.broker import PubSubBroker

logger = logging.getLogger(__name__)

#: How long before a push request's deadline a delayed message must be due for
#: Dramatiq to move it (notice the eta, publish, ack) within that request.
MOVE_ALLOWANCE_SECONDS = 5.0


class PushOutcome(enum.Enum):
    """How a pushed message ended, which the HTTP layer turns into a status."""

    ACKED = "acked"
    DEAD_LETTERED = "dead_lettered"
    RETRY = "retry"
    REJECTED = "rejected"


class _State(enum.Enum):
    WAITING = enum.auto()  # with the consumer, not yet handed to Dramatiq
    TAKEN = enum.auto()  # with Dramatiq
    SETTLING = enum.auto()  # an ack or nack is under way
    DONE = enum.auto()


class _Delivery:
    """One push request's message and the outcome its request thread waits for.

    Either side may finish first: the worker settles it, or the request gives
    up (deadline, shutdown) and Pub/Sub delivers the message again. Whichever
    comes second finds the delivery done and leaves it alone.
    """

    def __init__(self, message: dramatiq.Message[Any]) -> None:
        self.message = message
        self._lock = threading.Lock()
        self._state = _State.WAITING
        self._outcome = PushOutcome.RETRY
        self._done = threading.Event()

    def _move(self, allowed: tuple[_State, ...], to: _State) -> bool:
        with self._lock:
            if self._state not in allowed:
                return False
            self._state = to
            return True

    def take(self) -> bool:
        """Hand it to Dramatiq, unless the request already gave up."""
        return self._move((_State.WAITING,), _State.TAKEN)

    def claim(self) -> bool:
        """Start settling it, unless the request already gave up."""
        return self._move((_State.TAKEN,), _State.SETTLING)

    def finish(self, outcome: PushOutcome) -> None:
        with self._lock:
            self._outcome = outcome
            self._state = _State.DONE
        self._done.set()

    def give_up(self) -> bool:
        """Answer RETRY now, unless an ack or nack is already under way or done."""
        if not self._move((_State.WAITING, _State.TAKEN), _State.DONE):
            return False
        self._done.set()
        return True

    def outcome(self, timeout: float) -> PushOutcome:
        """Wait for the worker; past ``timeout`` give up, unless it is settling."""
        if not self._done.wait(max(timeout, 0.0)) and self.give_up():
            logger.warning(
                "Message %s was not settled within %.1f s; Pub/Sub will deliver it again.",
                self.message.message_id,
                timeout,
            )
        self._done.wait()
        return self._outcome


class PushMessageProxy(dramatiq.MessageProxy):
    """A Dramatiq message with the push request that waits for it."""

    def __init__(self, delivery: _Delivery, owner: PushConsumer) -> None:
        super().__init__(delivery.message)
        self._delivery = delivery
        self._owner = owner


def _proxies(messages: Iterable[dramatiq.MessageProxy]) -> list[PushMessageProxy]:
    return [m for m in messages if isinstance(m, PushMessageProxy)]


class PushConsumer(dramatiq.Consumer):
    """Hands Dramatiq the messages pushed for one queue (or delay queue).

    At most ``prefetch`` are out with Dramatiq at once; the others wait in their
    request threads, where a deadline can still withdraw them cleanly.
    """

    def __init__(
        self, broker: PubSubBroker, *, queue_name: str, prefetch: int, timeout_ms: int
    ) -> None:
        self._broker = broker
        self.queue_name = queue_name
        self._prefetch = prefetch
        self._timeout = timeout_ms / 1000
        self._changed = threading.Condition()
        self._waiting: deque[_Delivery] = deque()
        self._taken: set[_Delivery] = set()
        self._closed = False

    def offer(self, delivery: _Delivery) -> bool:
        """Queue a delivery for Dramatiq; False once closed."""
        with self._changed:
            if self._closed:
                return False
            self._waiting.append(delivery)
            self._changed.notify_all()
            return True

    def wait_closed(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._closed, max(timeout, 0.0))

    def __next__(self) -> PushMessageProxy | None:
        # As in pull mode: a failure left on this thread by a delayed message's
        # move that raised must not hold back the next message's ack.
        self._broker.take_publish_failure()
        deadline = time.monotonic() + self._timeout
        with self._changed:
            while True:
                while not self._closed and self._waiting and len(self._taken) < self._prefetch:
                    delivery = self._waiting.popleft()
                    if delivery.take():
                        self._taken.add(delivery)
                        return PushMessageProxy(delivery, self)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def _release(self, delivery: _Delivery) -> None:
        with self._changed:
            self._taken.discard(delivery)
            self._changed.notify_all()

    def ack(self, message: dramatiq.MessageProxy) -> None:
        """Answer 2xx, unless a publish failed while the message was processed."""
        assert isinstance(message, PushMessageProxy)
        delivery = message._delivery
        message._owner._release(delivery)
        if self._broker.take_publish_failure():
            logger.warning(
                "Not acking message %s: a publish failed while it was processed; "
                "Pub/Sub will deliver it again.",
                message.message_id,
            )
            delivery.give_up()
            return
        if delivery.claim():
            delivery.finish(PushOutcome.ACKED)
            self._broker.settled(message)

    def nack(self, message: dramatiq.MessageProxy) -> None:
        """Dead-letter the message, then answer 2xx: it was handled."""
        assert isinstance(message, PushMessageProxy)
        delivery = message._delivery
        message._owner._release(delivery)
        self._broker.take_publish_failure()
        if not delivery.claim():
            return  # the request gave up; the redelivery will fail again
        try:
            self._broker.dead_letter(message)
        except ConnectionClosed:
            logger.warning(
                "Could not dead-letter message %s; Pub/Sub will deliver it again.",
                message.message_id,
                exc_info=True,
            )
            delivery.finish(PushOutcome.RETRY)
            return
        except BaseException:
            delivery.finish(PushOutcome.RETRY)
            raise
        delivery.finish(PushOutcome.DEAD_LETTERED)
        self._broker.settled(message)

    def requeue(self, messages: Iterable[dramatiq.MessageProxy]) -> None:
        """Answer RETRY for messages Dramatiq gives back (it is shutting down)."""
        for message in _proxies(messages):
            message._owner._release(message._delivery)
            message._delivery.give_up()

    @property
    def closed(self) -> bool:
        with self._changed:
            return self._closed

    def close(self) -> None:
        """Refuse new deliveries and answer RETRY for those not handed out yet."""
        with self._changed:
            self._closed = True
            waiting, self._waiting = self._waiting, deque()
            self._changed.notify_all()
        for delivery in waiting:
            delivery.give_up()


class PushInbox:
    """Where push requests of one broker enter: one inbox, a consumer per queue."""

    def __init__(
        self, broker: PubSubBroker, *, allowed_options: Collection[str] | None = None
    ) -> None:
        self._broker = broker
        self._allowed_options = None if allowed_options is None else frozenset(allowed_options)
        self._lock = threading.Lock()
        self._consumers: dict[str, list[PushConsumer]] = {}

    def consumer(self, queue_name: str, *, prefetch: int, timeout_ms: int) -> PushConsumer:
        """A new consumer for the queue; deliveries go to its oldest open one."""
        consumer = PushConsumer(
            self._broker, queue_name=queue_name, prefetch=prefetch, timeout_ms=timeout_ms
        )
        with self._lock:
            current = [c for c in self._consumers.get(queue_name, []) if not c.closed]
            self._consumers[queue_name] = [*current, consumer]
        return consumer

    def _consumer_for(self, queue_name: str) -> PushConsumer | None:
        with self._lock:
            consumers = self._consumers.get(queue_name, [])
        return next((c for c in consumers if not c.closed), None)

    def deliver(self, envelope: Mapping[str, Any], *, timeout: float) -> PushOutcome:
        """Run one pushed message through the worker; block until it is settled.

        ``envelope`` is the JSON body of Pub/Sub's push request. ``timeout`` must
        stay below the subscription's ack deadline, after which Pub/Sub delivers
        the message again whatever this answers.
        """
        deadline = time.monotonic() + timeout
        decoded = self._decode(envelope)
        if isinstance(decoded, PushOutcome):
            return decoded
        consumer = self._consumer_for(decoded.queue_name)
        if consumer is None:
            logger.debug("No consumer for queue %r yet; asking for redelivery.", decoded.queue_name)
            return PushOutcome.RETRY
        if self._due_too_late(decoded, timeout):
            # Parked here rather than with Dramatiq, which could not ack it in time.
            consumer.wait_closed(deadline - time.monotonic())
            return PushOutcome.RETRY
        delivery = _Delivery(decoded)
        if not consumer.offer(delivery):
            return PushOutcome.RETRY
        return delivery.outcome(deadline - time.monotonic())

    @staticmethod
    def _due_too_late(message: dramatiq.Message[Any], timeout: float) -> bool:
        eta = message.options.get("eta")
        if not isinstance(eta, int | float):
            return False
        return eta / 1000 - time.time() > max(timeout - MOVE_ALLOWANCE_SECONDS, 0.0)

    def _decode(self, envelope: Mapping[str, Any]) -> dramatiq.Message[Any] | PushOutcome:
        """The Dramatiq message the envelope carries, or how the request ends."""
        pushed = envelope.get("message")
        if not isinstance(pushed, Mapping):
            return PushOutcome.REJECTED
        attributes = pushed.get("attributes")
        hint = attributes.get("dramatiq_queue") if isinstance(attributes, Mapping) else None
        text = pushed.get("data", "")
        if not isinstance(text, str):
            return self._undecodable(hint, repr(text).encode(), "data is not a string")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as error:
            return self._undecodable(hint, text.encode(), repr(error))
        try:
            message = dramatiq.Message.decode(data)
        except DecodeError as error:
            return self._undecodable(hint, data, repr(error))
        if message.queue_name not in self._broker.queues:
            logger.warning(
                "Rejecting pushed message %s for undeclared queue %r.",
                message.message_id,
                message.queue_name,
            )
            return PushOutcome.REJECTED
        return self._screened(message)

    def _screened(self, message: dramatiq.Message[Any]) -> dramatiq.Message[Any] | PushOutcome:
        """Only a declared actor with arguments it accepts runs, and only with the options
        this broker allows: a request that reaches the endpoint chooses every field."""
        try:
            actor = self._broker.get_actor(message.actor_name)
            inspect.signature(actor.fn).bind(*message.args, **message.kwargs)
        except (ActorNotFound, TypeError):
            logger.warning(
                "Rejecting pushed message %s: no actor %r taking its arguments.",
                message.message_id,
                message.actor_name,
            )
            return PushOutcome.REJECTED
        allowed = self._allowed_options
        if allowed is None or set(message.options) <= allowed:
            return message
        dropped = sorted(set(message.options) - allowed)
        logger.warning("Dropped options %s of pushed message %s.", dropped, message.message_id)
        kept = {key: value for key, value in message.options.items() if key in allowed}
        return dataclasses.replace(message, options=kept)  # copy() would merge them

    def _undecodable(self, queue_hint: object, data: bytes, reason: str) -> PushOutcome:
        """Dead-letter bytes that are no Dramatiq message, where the queue is known.

        Answering 2xx then keeps Pub/Sub from pushing the same poison again; with
        no queue to file it under, REJECTED leaves it to Pub/Sub's own policy.
        """
        if not isinstance(queue_hint, str) or q_name(queue_hint) not in self._broker.queues:
            logger.warning("Rejecting an undecodable pushed message (%d bytes).", len(data))
            return PushOutcome.REJECTED
        try:
            self._broker.dead_letter_raw(queue_hint, data, reason)
        except ConnectionClosed:
            logger.warning("Could not dead-letter an undecodable message.", exc_info=True)
            return PushOutcome.RETRY
        return PushOutcome.DEAD_LETTERED

    def close(self) -> None:
        """Close every consumer: requests still waiting answer RETRY."""
        with self._lock:
            consumers = [c for queue in self._consumers.values() for c in queue]
            self._consumers = {}
        for consumer in consumers:
            consumer.close()
