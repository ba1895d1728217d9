"""PubSubBroker: Dramatiq queues as Google Cloud Pub/Sub topics and subscriptions."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any, Literal

import dramatiq
from dramatiq.common import current_millis, dq_name, q_name
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.middleware import Middleware
from google.api_core import exceptions as gexc
from google.protobuf import timestamp_pb2
from google.pubsub_v1 import PubsubMessage

from brokers.pubsub import dead_letters
from brokers.pubsub.admin import Provisioner, SubscriptionPolicy
from brokers.pubsub.clients import Clients, bounded_retry, publish_retry
from brokers.pubsub.consumer import PubSubConsumer
from brokers.pubsub.dead_letters import DeadLetter
from brokers.pubsub.errors import DelayTooLong, MessageTooLarge, PublishFailed, ResourceMissing
from brokers.pubsub.names import NameScheme, QueueResources
from brokers.pubsub.push import PushConsumer, PushInbox

logger = logging.getLogger(__name__)

#: Pub/Sub refuses messages over 10 MB; keep room for attributes and framing.
MAX_MESSAGE_BYTES = 10_000_000 - 64 * 1024
_ATTRIBUTE_LIMIT = 1024  # Pub/Sub attribute values are at most 1,024 bytes.


class PubSubBroker(dramatiq.Broker):
    """A Dramatiq broker on Google Cloud Pub/Sub.

    Parameters:
      project: the Google Cloud project that holds the topics and subscriptions.
      namespace: a prefix for every resource id (tests give each run its own).
      emulator_host: ``host:port`` of an emulator; otherwise the client library
        decides (``PUBSUB_EMULATOR_HOST`` or Application Default Credentials).
      auto_create: create missing topics and subscriptions on first use. Leave it
        off in production, where workers need only publisher and subscriber roles.
      policy: ack deadline, retention and native dead-letter attempts.
      publish_timeout: seconds to wait for Pub/Sub to confirm a publish.
      hold_window: delayed messages due within this many seconds are held by the
        worker; later ones are parked on their delay subscription.
      lease_extension: the longest single lease extension; a crashed worker's
        messages come back within about this many seconds.
      max_lease: the longest a message may stay leased while queued or running;
        keep it above the largest actor time limit plus queueing time.
      subscription_overrides: canonical queue name -> existing subscription id.
      delivery: ``"pull"`` streams messages from the subscriptions; ``"push"``
        takes those Pub/Sub POSTs to the worker, through ``push_inbox`` (Cloud Run).
      attribute_options: message options also published as Pub/Sub attributes (string
        values up to 1,024 bytes), for whoever reads attributes without decoding the
        body, e.g. W3C trace context (``traceparent``). The body still carries them.
      push_options: the message options a pushed message keeps (``None``: all). Whoever
        reaches the push endpoint writes the whole message, time limits and retry
        counts included; a pushed message must also name a declared actor and fit its
        arguments.
    """

    def __init__(
        self,
        *,
        project: str,
        namespace: str = "",
        emulator_host: str | None = None,
        auto_create: bool = True,
        policy: SubscriptionPolicy | None = None,
        publish_timeout: float = 30.0,
        hold_window: float = 30.0,
        lease_extension: int = 60,
        max_lease: int = 7200,
        subscription_overrides: Mapping[str, str] | None = None,
        delivery: Literal["pull", "push"] = "pull",
        attribute_options: Collection[str] = (),
        push_options: Collection[str] | None = None,
        middleware: list[Middleware] | None = None,
    ) -> None:
        super().__init__(middleware=middleware)
        if not 10 <= lease_extension <= 600:
            raise ValueError("lease_extension must be between 10 and 600 seconds")
        if delivery not in ("pull", "push"):
            raise ValueError(f"delivery must be 'pull' or 'push', not {delivery!r}")
        self.project = project
        self.names = NameScheme(namespace, subscription_overrides)
        self.clients = Clients(emulator_host=emulator_host)
        self.policy = policy or SubscriptionPolicy()
        self.provisioner = Provisioner(
            self.clients, project=project, policy=self.policy, timeout=publish_timeout
        )
        self.auto_create = auto_create
        self.attribute_options = tuple(attribute_options)
        self.publish_timeout = publish_timeout
        self._publish_retry = publish_retry(publish_timeout)
        self.hold_window_seconds = hold_window
        self.lease_extension_seconds = lease_extension
        self.max_lease_seconds = max_lease
        self.max_delay_ms = int((self.policy.retention - timedelta(hours=1)).total_seconds() * 1000)
        self.queues: dict[str, QueueResources] = {}
        self._ensured: set[tuple[int, str]] = set()
        self._ensure_lock = threading.Lock()
        self._consumers: list[PubSubConsumer] = []
        self.push_inbox = (
            PushInbox(self, allowed_options=push_options) if delivery == "push" else None
        )
        self._pending: defaultdict[str, set[str]] = defaultdict(set)
        self._pending_changed = threading.Condition()
        self._publish_failures = threading.local()

    # -- declaring --------------------------------------------------------------------------

    def declare_queue(self, queue_name: str) -> None:
        """Record the queue and its delay queue; no I/O, since actors call this at import."""
        if queue_name in self.queues:
            return
        resources = self.names.resources(queue_name)
        delay_resources = self.names.delay_resources(queue_name)
        self.emit_before("declare_queue", queue_name)
        self.queues[queue_name] = resources
        self.emit_after("declare_queue", queue_name)
        delay_name = dq_name(queue_name)
        self.queues[delay_name] = delay_resources
        self.delay_queues.add(delay_name)
        self.emit_after("declare_delay_queue", delay_name)

    def get_declared_queues(self) -> set[str]:
        return {name for name in self.queues if name not in self.delay_queues}

    def _resources(self, queue_name: str) -> QueueResources:
        try:
            return self.queues[queue_name]
        except KeyError:
            raise QueueNotFound(queue_name) from None

    def _ensure(self, queue_name: str) -> None:
        """Create the queue's resources once per process, when allowed to."""
        if not self.auto_create:
            return
        key = (os.getpid(), queue_name)
        if key in self._ensured:
            return
        with self._ensure_lock:
            if key not in self._ensured:
                resources = self._resources(queue_name)
                self.provisioner.ensure(resources, delay=queue_name in self.delay_queues)
                self._ensured.add(key)

    def provision(self) -> list[str]:
        """Create or update every declared queue's resources; a line per resource."""
        report: list[str] = []
        for name in sorted(self.queues):
            report += self.provisioner.apply(self.queues[name], delay=name in self.delay_queues)
        return report

    # -- publishing -------------------------------------------------------------------------

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        """Publish and wait for Pub/Sub to confirm.

        Dramatiq enqueues retries and pipeline steps before it acks the message
        being processed, so a publish that is not confirmed could lose work.
        Any failure, a refused delay or size included, is noted for the ack
        (see ``take_publish_failure``).
        """
        try:
            return self._enqueue(message, delay=delay)
        except BaseException:
            self._publish_failures.failed = True
            raise

    def _enqueue(self, message: dramatiq.Message[Any], *, delay: int | None) -> Any:
        queue_name = message.queue_name
        self._resources(queue_name)
        if delay is not None and delay > 0:
            if delay > self.max_delay_ms:
                raise DelayTooLong(
                    f"delay of {delay} ms is over the {self.max_delay_ms} ms this broker can park"
                )
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
        enqueue_id = uuid.uuid4().hex
        message = message.copy(options={"pubsub_enqueue_id": enqueue_id})
        # Middleware may add options before the message is encoded, as in Dramatiq's brokers.
        self.emit_before("enqueue", message, delay)
        data = message.encode()
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(
                f"message {message.message_id} is {len(data)} bytes; Pub/Sub accepts at most "
                f"{MAX_MESSAGE_BYTES} bytes per message"
            )
        self._track(queue_name, enqueue_id)
        try:
            self._ensure(queue_name)
            self._publish(self._resources(queue_name).topic, data, self._attributes(message))
        except BaseException:
            self._untrack(queue_name, enqueue_id)
            raise
        self.emit_after("enqueue", message, delay)
        return message

    def _attributes(self, message: dramatiq.Message[Any]) -> dict[str, str]:
        """Who the message is for, and the options named in ``attribute_options``."""
        attributes = {
            "dramatiq_message_id": message.message_id,
            "dramatiq_actor": message.actor_name,
            "dramatiq_queue": message.queue_name,
        }
        if "eta" in message.options:
            attributes["dramatiq_eta"] = str(message.options["eta"])
        for name in self.attribute_options:
            value = message.options.get(name)
            if isinstance(value, str) and len(value.encode()) <= _ATTRIBUTE_LIMIT:
                attributes[name] = value
        return attributes

    def _publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> None:
        """One ``Publish`` call, retried on transient errors for up to ``publish_timeout``;
        its answer (the message id) is the confirmation. A single message gains nothing
        from the library's batches, which cost a thread and a hand-off per publish."""
        path = self.provisioner.topic_path(topic)
        try:
            self.clients.publish_rpc.publish(
                topic=path,
                messages=[PubsubMessage(data=data, attributes=attributes)],
                retry=self._publish_retry,
                timeout=self.publish_timeout,
            )
        except gexc.NotFound as error:
            raise ResourceMissing(
                f"Pub/Sub topic {path} does not exist; provision it or enable auto_create"
            ) from error
        except (gexc.GoogleAPICallError, gexc.RetryError) as error:
            raise PublishFailed(f"publish to {path} was not confirmed: {error!r}") from error

    def emit_after(self, signal: str, *args: Any, **kwargs: Any) -> None:
        if signal == "process_message":
            # The actor has returned or raised: it saw its own failed publishes.
            # Only those of the middleware that runs now may hold back the ack.
            self._publish_failures.failed = False
        super().emit_after(signal, *args, **kwargs)

    def take_publish_failure(self) -> bool:
        """Whether a publish failed on this thread since the last ack or nack.

        Dramatiq swallows errors raised by middleware (a retry's enqueue, say) and
        then acks the message; the consumer asks this first and redelivers instead.
        """
        failed = bool(getattr(self._publish_failures, "failed", False))
        self._publish_failures.failed = False
        return failed

    def dead_letter(self, message: dramatiq.MessageProxy) -> None:
        """Publish a failed message, with why it failed, to its queue's dead-letter topic."""
        exception = getattr(message, "_exception", None)
        reason = repr(exception) if exception is not None else "rejected"
        self._dead_letter(message.queue_name, message.encode(), reason, message.message_id)

    def dead_letter_raw(self, queue_name: str, data: bytes, reason: str) -> None:
        self._dead_letter(queue_name, data, reason, "undecodable")

    def dead_letters(self, queue_name: str, *, max_messages: int = 100) -> list[DeadLetter]:
        """Dead letters of ``queue_name``, leased to the caller, who acks those it dealt
        with (:meth:`ack_dead_letters`); the others come back after the ack deadline."""
        self._ensure(q_name(queue_name))
        return dead_letters.pull(
            self.clients,
            self._dead_letter_path(queue_name),
            max_messages=max_messages,
            timeout=self.publish_timeout,
        )

    def ack_dead_letters(self, queue_name: str, letters: list[DeadLetter]) -> None:
        dead_letters.ack(
            self.clients, self._dead_letter_path(queue_name), letters, timeout=self.publish_timeout
        )

    def _dead_letter_path(self, queue_name: str) -> str:
        resources = self._resources(q_name(queue_name))
        return self.provisioner.subscription_path(resources.dead_letter_subscription)

    def _dead_letter(self, queue_name: str, data: bytes, reason: str, message_id: str) -> None:
        resources = self._resources(q_name(queue_name))
        self._publish(
            resources.dead_letter_topic,
            data,
            {
                "dramatiq_message_id": message_id,
                "dramatiq_queue": q_name(queue_name),
                "dead_letter_reason": reason.encode()[:_ATTRIBUTE_LIMIT].decode(errors="ignore"),
                "dead_lettered_at": str(current_millis()),
            },
        )

    # -- consuming --------------------------------------------------------------------------

    def consume(
        self, queue_name: str, prefetch: int = 1, timeout: int = 30000
    ) -> PubSubConsumer | PushConsumer:
        resources = self._resources(queue_name)
        self._ensure(queue_name)
        if self.push_inbox is not None:
            return self.push_inbox.consumer(queue_name, prefetch=prefetch, timeout_ms=timeout)
        consumer = PubSubConsumer(
            self,
            queue_name=queue_name,
            subscription_path=self.provisioner.subscription_path(resources.subscription),
            prefetch=prefetch,
            timeout_ms=timeout,
            park_delayed=queue_name in self.delay_queues,
        )
        # Dramatiq replaces a consumer after a connection error; forget the closed ones.
        self._consumers = [c for c in self._consumers if not c.closed] + [consumer]
        return consumer

    # -- health -----------------------------------------------------------------------------

    def check_health(self, timeout: float, *, consumed: Collection[str] | None = None) -> None:
        """Raise unless Pub/Sub answers, within ``timeout`` per call, for what this broker uses.

        A publisher (``consumed`` None) needs the topics of its declared queues; a
        worker names the queues it consumes and needs their topics and subscriptions
        (delay queues aside). It only looks: nothing is created, whatever ``auto_create`` says.
        """
        if consumed is None:
            queue_names = sorted(self.get_declared_queues())
        else:
            queue_names = sorted(set(consumed) - self.delay_queues)
        if not queue_names:
            raise RuntimeError("the broker has no queue to check yet")
        for queue_name in queue_names:
            resources = self._resources(queue_name)
            self.clients.publisher.get_topic(
                request={"topic": self.provisioner.topic_path(resources.topic)},
                timeout=timeout,
                retry=None,
            )
            if consumed is not None:
                self.clients.subscriber.get_subscription(
                    request={
                        "subscription": self.provisioner.subscription_path(resources.subscription)
                    },
                    timeout=timeout,
                    retry=None,
                )

    # -- accounting for join ----------------------------------------------------------------

    def _track(self, queue_name: str, enqueue_id: str) -> None:
        with self._pending_changed:
            self._pending[q_name(queue_name)].add(enqueue_id)

    def _untrack(self, queue_name: str, enqueue_id: str) -> None:
        with self._pending_changed:
            self._pending[q_name(queue_name)].discard(enqueue_id)
            self._pending_changed.notify_all()

    def settled(self, message: dramatiq.MessageProxy) -> None:
        """A message was acked or dead-lettered: it no longer counts for ``join``."""
        enqueue_id = message.options.get("pubsub_enqueue_id")
        if enqueue_id:
            self._untrack(message.queue_name, enqueue_id)

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until every message this process enqueued on the queue (delays included)
        has been acked or dead-lettered. Meant for tests, where producer and worker
        share the broker."""
        canonical = q_name(queue_name)
        self._resources(canonical)
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        with self._pending_changed:
            while self._pending[canonical]:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise QueueJoinTimeout(canonical)
                self._pending_changed.wait(remaining)

    # -- housekeeping -----------------------------------------------------------------------

    def flush(self, queue_name: str) -> None:
        """Drop every message of the queue, its delay queue and its dead letters."""
        canonical = q_name(queue_name)
        resources = self._resources(canonical)
        delay = self._resources(dq_name(canonical))
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        for subscription in (
            resources.subscription,
            resources.dead_letter_subscription,
            delay.subscription,
        ):
            try:
                self.clients.subscriber.seek(
                    request={
                        "subscription": self.provisioner.subscription_path(subscription),
                        "time": now,
                    },
                    timeout=self.publish_timeout,
                    retry=bounded_retry(self.publish_timeout),
                )
            except gexc.NotFound:
                continue
        with self._pending_changed:
            self._pending[canonical].clear()
            self._pending_changed.notify_all()

    def flush_all(self) -> None:
        for queue_name in self.get_declared_queues():
            self.flush(queue_name)

    def close(self) -> None:
        """Stop every stream and push consumer (handing back unstarted messages)
        and close the clients."""
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            consumer.close()
        if self.push_inbox is not None:
            self.push_inbox.close()
        self.clients.close()
