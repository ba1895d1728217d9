"""Streaming-pull consumers: flow control equal to prefetch, leases, ack/nack/requeue.

google-cloud-pubsub's streaming pull does the hard parts: flow control and lease
extension for every message not yet acked, which covers messages waiting in
Dramatiq's work queue and messages being worked on. A scheduler that only buffers
hands its messages to Dramatiq's consumer thread instead of running callbacks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import dramatiq
import google.cloud.pubsub_v1 as pubsub_v1
from dramatiq.errors import ConnectionClosed, DecodeError
from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1.subscriber.message import Message as PubSubMessage
from google.cloud.pubsub_v1.subscriber.scheduler import Scheduler

from brokers.pubsub.clients import bounded_retry

if TYPE_CHECKING:
    from brokers.pubsub.broker import PubSubBroker

logger = logging.getLogger(__name__)

_ACK_BATCH = 1000  # Pub/Sub takes at most 1,000 ack ids per request.
_RPC_TIMEOUT = 30.0


class _BufferScheduler(Scheduler):  # type: ignore[misc]
    """Puts received messages in a buffer; on shutdown returns those not yet taken."""

    def __init__(self, buffer: queue.Queue[PubSubMessage]) -> None:
        self._requests: queue.Queue[Any] = queue.Queue()
        self._buffer = buffer

    @property
    def queue(self) -> queue.Queue[Any]:
        return self._requests

    def schedule(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._buffer.put(args[0])

    def shutdown(self, await_msg_callbacks: bool = False) -> list[PubSubMessage]:
        undelivered: list[PubSubMessage] = []
        while True:
            try:
                undelivered.append(self._buffer.get_nowait())
            except queue.Empty:
                return undelivered


class _Stream:
    """One streaming pull and whether acks can still travel over it."""

    def __init__(
        self,
        subscriber: pubsub_v1.SubscriberClient,
        subscription_path: str,
        flow_control: pubsub_v1.types.FlowControl,
    ) -> None:
        self.buffer: queue.Queue[PubSubMessage] = queue.Queue()
        self.subscription_path = subscription_path
        self._closed = threading.Event()
        self.future = subscriber.subscribe(
            subscription_path,
            callback=lambda _message: None,
            flow_control=flow_control,
            scheduler=_BufferScheduler(self.buffer),
            await_callbacks_on_shutdown=False,
        )

    @property
    def alive(self) -> bool:
        return not self._closed.is_set() and not self.future.done()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def failure(self) -> BaseException | None:
        if self._closed.is_set() or not self.future.done():
            return None
        try:
            error: BaseException | None = self.future.exception(timeout=0)
            return error
        except Exception as error:  # cancelled futures raise instead of returning
            return error

    def close(self, timeout: float = 30.0) -> None:
        """Stop the stream; Pub/Sub gets back every message Dramatiq has not taken yet."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.future.cancel()
        # A cancelled stream ends with an error by design.
        with contextlib.suppress(Exception):
            self.future.result(timeout=timeout)


class PubSubMessageProxy(dramatiq.MessageProxy):
    """A Dramatiq message with the Pub/Sub delivery it came from."""

    def __init__(self, message: dramatiq.Message[Any], received: PubSubMessage, stream: _Stream):
        super().__init__(message)
        self._received = received
        self._stream = stream


class PubSubConsumer(dramatiq.Consumer):
    """Consumes one queue (or delay queue) of a :class:`PubSubBroker`."""

    def __init__(
        self,
        broker: PubSubBroker,
        *,
        queue_name: str,
        subscription_path: str,
        prefetch: int,
        timeout_ms: int,
        park_delayed: bool,
    ) -> None:
        self._broker = broker
        self.queue_name = queue_name
        self._timeout = timeout_ms / 1000
        self._park_delayed = park_delayed
        self._subscriber = broker.clients.subscriber
        flow_control = pubsub_v1.types.FlowControl(
            max_messages=prefetch,
            max_bytes=1 << 30,
            max_lease_duration=broker.max_lease_seconds,
            max_duration_per_lease_extension=broker.lease_extension_seconds,
        )
        self._stream = _Stream(self._subscriber, subscription_path, flow_control)

    def __next__(self) -> PubSubMessageProxy | None:
        # A failure noted on this thread and not taken by an ack (a delayed
        # message's move that raised) must not hold back the next message's ack.
        self._broker.take_publish_failure()
        deadline = time.monotonic() + self._timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                received = self._stream.buffer.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                failure = self._stream.failure()
                if failure is not None:
                    raise ConnectionClosed(failure) from failure
                return None
            try:
                message = dramatiq.Message.decode(received.data)
            except DecodeError as error:
                self._broker.dead_letter_raw(self.queue_name, received.data, repr(error))
                received.ack()
                continue
            if self._park_delayed and self._park_if_early(message, received):
                continue
            return PubSubMessageProxy(message, received, self._stream)

    def _park_if_early(self, message: dramatiq.Message[Any], received: PubSubMessage) -> bool:
        """Leave a far-off delayed message with Pub/Sub until close to its eta.

        Pub/Sub has no scheduled delivery; an ack deadline of up to 600 s is the
        longest it will hold a message unseen. Anything due later than the hold
        window is released from our lease and redelivered when the deadline passes,
        then checked again.
        """
        eta = message.options.get("eta")
        if eta is None:
            return False
        remaining = eta / 1000 - time.time()
        if remaining <= self._broker.hold_window_seconds:
            return False
        seconds = min(600, max(1, math.ceil(remaining - self._broker.hold_window_seconds / 2)))
        received.drop()
        self._subscriber.modify_ack_deadline(
            request={
                "subscription": self._stream.subscription_path,
                "ack_ids": [received.ack_id],
                "ack_deadline_seconds": seconds,
            },
            timeout=_RPC_TIMEOUT,
            retry=bounded_retry(_RPC_TIMEOUT),
        )
        return True

    def ack(self, message: dramatiq.MessageProxy) -> None:
        assert isinstance(message, PubSubMessageProxy)
        if self._broker.take_publish_failure():
            logger.warning(
                "Not acking message %s: a publish failed while it was processed; "
                "Pub/Sub will deliver it again.",
                message.message_id,
            )
            self._return([message])
            return
        self._settle(message)

    def nack(self, message: dramatiq.MessageProxy) -> None:
        """Dead-letter: publish to the queue's dead-letter topic with the reason, then ack."""
        assert isinstance(message, PubSubMessageProxy)
        self._broker.take_publish_failure()
        self._broker.dead_letter(message)
        self._settle(message)

    def _settle(self, message: PubSubMessageProxy) -> None:
        stream = message._stream
        if stream.alive:
            message._received.ack()
        else:
            self._unary("acknowledge", stream.subscription_path, [message._received.ack_id])
        self._broker.settled(message)

    def requeue(self, messages: Iterable[dramatiq.MessageProxy]) -> None:
        """Give messages back at once; the stream stops first so they go to other workers."""
        self._stream.close()
        self._return([m for m in messages if isinstance(m, PubSubMessageProxy)])

    def _return(self, messages: list[PubSubMessageProxy]) -> None:
        """Make messages deliverable again now (ack deadline 0)."""
        by_subscription: dict[str, list[str]] = {}
        for message in messages:
            if message._stream.alive:
                message._received.nack()
                continue
            path = message._stream.subscription_path
            by_subscription.setdefault(path, []).append(message._received.ack_id)
        for path, ack_ids in by_subscription.items():
            self._unary("modify_ack_deadline", path, ack_ids)

    def _unary(self, method: str, subscription_path: str, ack_ids: list[str]) -> None:
        for start in range(0, len(ack_ids), _ACK_BATCH):
            request: dict[str, Any] = {
                "subscription": subscription_path,
                "ack_ids": ack_ids[start : start + _ACK_BATCH],
            }
            if method == "modify_ack_deadline":
                request["ack_deadline_seconds"] = 0
            try:
                getattr(self._subscriber, method)(
                    request=request, timeout=_RPC_TIMEOUT, retry=bounded_retry(_RPC_TIMEOUT)
                )
            except gexc.InvalidArgument:
                # Expired ack ids: Pub/Sub redelivers those messages anyway.
                logger.debug("Ignoring expired ack ids on %s", subscription_path)
            except gexc.GoogleAPICallError as error:
                raise ConnectionClosed(error) from error

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def close(self) -> None:
        self._stream.close()
