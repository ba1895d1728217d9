"""The embedded server: topics, subscriptions, leases and delivery, in memory.

Behaviour follows Google's emulator jar wherever the broker or the tests can observe it
(error codes and messages, ack ids, delivery attempts, dead-lettering, seek), and the
real service where the jar is known to differ (a closed stream's messages come back at
once; flow control is applied on the server). ``tests/pubsub_backend`` checks it against
the jar.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.pubsub_v1.types import pubsub

from consensus_engine.devtools.pubsub_server.resources import (
    DELETED_TOPIC,
    Code,
    RpcError,
    apply_subscription_defaults,
    page_of,
    rfc3339,
    split_name,
)
from consensus_engine.devtools.pubsub_server.rpc import grpc_server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8085  # the emulator jar's
PULL_WAIT_S = 2.0  # the jar holds an empty Pull until the client's deadline; shorter is kinder
MAX_BATCH = 1000
_SUB_FIELDS = {"ack_deadline_seconds", "dead_letter_policy", "retry_policy"}
_SUB_FIELDS |= {"message_retention_duration", "labels"}


@dataclass(eq=False)
class _Entry:
    """One message as seen by one subscription."""

    message: Any  # a protobuf PubsubMessage, shared by every subscription's copy
    seq: int
    published: float
    size: int
    attempts: int = 0


@dataclass(eq=False)
class _Sub:
    config: pubsub.Subscription
    ready: collections.deque[_Entry] = field(default_factory=collections.deque)
    leases: dict[str, tuple[_Entry, float]] = field(default_factory=dict)
    next_expiry: float = float("inf")


class EmbeddedPubSubServer:
    """Topics, subscriptions and leases behind one lock and condition.

    Expired leases are found lazily (on every call, and by waiters that sleep
    until the earliest deadline), so no timer thread is needed.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self._host, self._port = host, port
        self._cond = threading.Condition()
        self._topics: dict[str, pubsub.Topic] = {}
        self._subs: dict[str, _Sub] = {}
        self._ids = itertools.count(1)
        self._stopping = False
        self._server: Any = None

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    def start(self) -> EmbeddedPubSubServer:
        """Listen and serve on background threads; OSError when the address is taken."""
        self._server = grpc_server(self, self._cond)
        try:
            self._port = self._server.add_insecure_port(f"{self._host}:{self._port}")
        except RuntimeError as error:  # grpc's only word for any bind failure
            self._server = None
            reason = "the port is taken, or the address is not this machine's"
            raise OSError(f"cannot listen on {self.address} ({reason})") from error
        self._server.start()
        return self

    def stop(self) -> None:
        """End every long poll and stream, then the server itself."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.stop(grace=1.0).wait()
            self._server = None

    def __enter__(self) -> EmbeddedPubSubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def create_topic(self, topic: pubsub.Topic, context: Any) -> pubsub.Topic:
        split_name(topic.name, "topics")
        if topic.name in self._topics:
            raise RpcError(Code.ALREADY_EXISTS, "Topic already exists")
        self._topics[topic.name] = topic
        return topic

    def _topic(self, name: str) -> pubsub.Topic:
        split_name(name, "topics")
        if name not in self._topics:
            raise RpcError(Code.NOT_FOUND, "Topic not found")
        return self._topics[name]

    def get_topic(self, request: pubsub.GetTopicRequest, context: Any) -> pubsub.Topic:
        return self._topic(request.topic)

    def update_topic(self, request: pubsub.UpdateTopicRequest, context: Any) -> pubsub.Topic:
        paths = list(request.update_mask.paths)
        if not paths or set(paths) - {"labels", "message_retention_duration"}:
            raise RpcError(Code.INVALID_ARGUMENT, f"Unsupported update_mask: {paths}")
        topic = self._topic(request.topic.name)
        for path in paths:
            setattr(topic, path, getattr(request.topic, path))
        return topic

    def _listed(self, table: dict[str, Any], prefix: str, request: Any) -> tuple[list[Any], str]:
        """One page of the resources whose names start with ``prefix``."""
        names = sorted(n for n in table if n.startswith(prefix))
        page, token = page_of(names, request.page_size, request.page_token)
        return [table[n] for n in page], token

    def list_topics(self, request: pubsub.ListTopicsRequest, context: Any) -> Any:
        topics, token = self._listed(self._topics, f"{request.project}/topics/", request)
        return pubsub.ListTopicsResponse(topics=topics, next_page_token=token)

    def list_topic_subscriptions(
        self, request: pubsub.ListTopicSubscriptionsRequest, context: Any
    ) -> Any:
        self._topic(request.topic)
        names = sorted(n for n, s in self._subs.items() if s.config.topic == request.topic)
        page, token = page_of(names, request.page_size, request.page_token)
        return pubsub.ListTopicSubscriptionsResponse(subscriptions=page, next_page_token=token)

    def delete_topic(self, request: pubsub.DeleteTopicRequest, context: Any) -> None:
        """Subscriptions outlive their topic, as on Google: they just stop receiving."""
        self._topic(request.topic)
        del self._topics[request.topic]
        for sub in self._subs.values():
            if sub.config.topic == request.topic:
                sub.config.topic = DELETED_TOPIC

    def publish(self, request: pubsub.PublishRequest, context: Any) -> pubsub.PublishResponse:
        if not request.messages:
            raise RpcError(Code.INVALID_ARGUMENT, "No messages to publish")
        messages = [pubsub.PubsubMessage.pb(m) for m in request.messages]
        if any(not m.data and not m.attributes for m in messages):
            raise RpcError(Code.INVALID_ARGUMENT, "Some messages are empty")
        self._topic(request.topic)
        return pubsub.PublishResponse(message_ids=self._publish(request.topic, messages))

    def _publish(self, topic: str, messages: list[Any]) -> list[str]:
        """Copy each message to every subscription that exists now (none: it is dropped)."""
        subs = [s for s in self._subs.values() if s.config.topic == topic]
        ids = []
        for original in messages:
            now, seq = time.time(), next(self._ids)
            message = type(original)()
            message.CopyFrom(original)
            message.message_id = str(seq)
            message.publish_time.FromNanoseconds(int(now * 1e9))
            entry_size = message.ByteSize()
            for sub in subs:
                sub.ready.append(_Entry(message, seq, now, entry_size))
            ids.append(message.message_id)
        self._cond.notify_all()
        return ids

    def create_subscription(self, config: pubsub.Subscription, context: Any) -> Any:
        split_name(config.name, "subscriptions")
        if config.filter or config.push_config.push_endpoint:
            raise RpcError(
                Code.UNIMPLEMENTED, "the embedded server has no filters or push delivery"
            )
        if config.name in self._subs:
            raise RpcError(Code.ALREADY_EXISTS, "Subscription already exists")
        if config.topic not in self._topics:
            split_name(config.topic, "topics")
            raise RpcError(Code.NOT_FOUND, "Subscription topic does not exist")
        apply_subscription_defaults(config, self._topics)
        self._subs[config.name] = _Sub(config)
        return config

    def _sub(self, name: str) -> _Sub:
        split_name(name, "subscriptions")
        if name not in self._subs:
            raise RpcError(Code.NOT_FOUND, "Subscription does not exist")
        return self._subs[name]

    def get_subscription(self, request: pubsub.GetSubscriptionRequest, context: Any) -> Any:
        return self._sub(request.subscription).config

    def update_subscription(self, request: pubsub.UpdateSubscriptionRequest, context: Any) -> Any:
        paths = set(request.update_mask.paths)
        if not paths or paths - _SUB_FIELDS:
            raise RpcError(Code.INVALID_ARGUMENT, f"Unsupported update_mask: {sorted(paths)}")
        sub = self._sub(request.subscription.name)
        config = pubsub.Subscription.deserialize(pubsub.Subscription.serialize(sub.config))
        for path in paths:
            setattr(config, path, getattr(request.subscription, path))
        apply_subscription_defaults(config, self._topics)
        sub.config = config
        return config

    def list_subscriptions(self, request: pubsub.ListSubscriptionsRequest, context: Any) -> Any:
        subs, token = self._listed(self._subs, f"{request.project}/subscriptions/", request)
        configs = [sub.config for sub in subs]
        return pubsub.ListSubscriptionsResponse(subscriptions=configs, next_page_token=token)

    def delete_subscription(self, request: pubsub.DeleteSubscriptionRequest, context: Any) -> None:
        self._sub(request.subscription)
        del self._subs[request.subscription]
        self._cond.notify_all()

    def _sweep(self, sub: _Sub) -> None:
        """Return every message whose lease has expired (a failed delivery attempt)."""
        now = time.monotonic()
        if now < sub.next_expiry:
            return
        expired = [a for a, (_, deadline) in sub.leases.items() if deadline <= now]
        for ack_id in expired:
            self._release(sub, sub.leases.pop(ack_id)[0])
        sub.next_expiry = min((d for _, d in sub.leases.values()), default=float("inf"))
        if expired:
            self._cond.notify_all()

    def _release(self, sub: _Sub, entry: _Entry) -> None:
        """Redeliver a nacked or expired message, or dead-letter it after its last attempt."""
        policy = sub.config.dead_letter_policy
        if not policy.dead_letter_topic or entry.attempts < policy.max_delivery_attempts:
            sub.ready.appendleft(entry)
            return
        if policy.dead_letter_topic not in self._topics:
            return  # nowhere to go: dropped
        project, sub_id = split_name(sub.config.name, "subscriptions")
        message = type(entry.message)()
        message.CopyFrom(entry.message)
        message.ClearField("publish_time")
        message.attributes.update(
            CloudPubSubDeadLetterSourceDeliveryCount=str(entry.attempts),
            CloudPubSubDeadLetterSourceSubscription=sub_id,
            CloudPubSubDeadLetterSourceSubscriptionProject=project,
            CloudPubSubDeadLetterSourceTopicPublishTime=rfc3339(entry.published),
        )
        self._publish(policy.dead_letter_topic, [message])

    def _take(self, sub: _Sub, limit: int, max_bytes: int, deadline_s: int) -> list[Any]:
        """Lease up to ``limit`` ready messages (and ``max_bytes``, at least one message)."""
        taken: list[Any] = []
        total, expiry = 0, time.monotonic() + deadline_s
        counts = bool(sub.config.dead_letter_policy.dead_letter_topic)
        while sub.ready and len(taken) < limit and (not taken or total < max_bytes):
            entry = sub.ready.popleft()
            entry.attempts += 1
            total += entry.size
            ack_id = f"{sub.config.name}:{next(self._ids)}"
            sub.leases[ack_id] = (entry, expiry)
            sub.next_expiry = min(sub.next_expiry, expiry)
            attempt = entry.attempts if counts else 0
            received = pubsub.ReceivedMessage(ack_id=ack_id, delivery_attempt=attempt)
            pubsub.ReceivedMessage.pb(received).message.CopyFrom(entry.message)
            taken.append(received)
        return taken

    def _wait(self, sub: _Sub, until: float) -> None:
        self._cond.wait(max(0.0, min(until, sub.next_expiry) - time.monotonic()) + 0.001)

    def _leased(self, request: Any) -> tuple[_Sub, list[str]]:
        """The subscription and ack ids of an ack or deadline change, by the jar's rules:
        foreign or malformed ids are errors, stale ones are ignored."""
        sub, ack_ids = self._sub(request.subscription), list(request.ack_ids)
        if not ack_ids:
            raise RpcError(Code.INVALID_ARGUMENT, "No ack ids specified.")
        for ack_id in ack_ids:
            owner, _, number = ack_id.rpartition(":")
            if not number.isdigit() or not owner:
                raise RpcError(Code.INVALID_ARGUMENT, f"Invalid ack id (ack_id={ack_id})")
            if owner != sub.config.name:
                raise RpcError(
                    Code.INVALID_ARGUMENT,
                    f"Subscription {sub.config.name} received an invalid ack ID {ack_id}, "
                    f"meant for subscription: {owner}",
                )
        return sub, ack_ids

    def _modify(self, sub: _Sub, ack_ids: list[str], seconds: list[int]) -> None:
        """Nack (0 s) or extend leases; unknown ids are ignored."""
        now = time.monotonic()
        for ack_id, deadline_s in zip(ack_ids, seconds, strict=False):
            lease = sub.leases.pop(ack_id, None)
            if lease is None:
                continue
            if deadline_s <= 0:
                self._release(sub, lease[0])
            else:
                sub.leases[ack_id] = (lease[0], now + deadline_s)
                sub.next_expiry = min(sub.next_expiry, now + deadline_s)
        self._cond.notify_all()

    def _ack(self, sub: _Sub, ack_ids: list[str]) -> None:
        for ack_id in ack_ids:
            sub.leases.pop(ack_id, None)
        self._cond.notify_all()

    def acknowledge(self, request: pubsub.AcknowledgeRequest, context: Any) -> None:
        self._ack(*self._leased(request))

    def modify_ack_deadline(self, request: pubsub.ModifyAckDeadlineRequest, context: Any) -> None:
        sub, ids = self._leased(request)
        if not 0 <= request.ack_deadline_seconds <= 600:
            raise RpcError(Code.INVALID_ARGUMENT, "Ack deadline must be within 0..600 s")
        self._modify(sub, ids, [request.ack_deadline_seconds] * len(ids))

    def seek(self, request: pubsub.SeekRequest, context: Any) -> pubsub.SeekResponse:
        """Seek to a time: older messages count as acked, newer ones are delivered again."""
        raw = pubsub.SeekRequest.pb(request)
        if raw.WhichOneof("target") != "time":
            raise RpcError(Code.UNIMPLEMENTED, "the embedded server only seeks to a time")
        cutoff = raw.time.ToNanoseconds() / 1e9
        sub = self._sub(request.subscription)
        entries = list(sub.ready) + [entry for entry, _ in sub.leases.values()]
        sub.leases.clear()
        sub.ready = collections.deque(
            sorted((e for e in entries if e.published > cutoff), key=lambda e: e.seq)
        )
        self._cond.notify_all()
        return pubsub.SeekResponse()

    def pull(self, request: pubsub.PullRequest, context: Any) -> pubsub.PullResponse:
        if request.max_messages <= 0:
            raise RpcError(Code.INVALID_ARGUMENT, "No max_messages specified")
        remaining = context.time_remaining()
        wait_s = 0.0 if request.return_immediately else PULL_WAIT_S
        until = time.monotonic() + min(wait_s, max(0.0, (remaining or wait_s) - 0.2))
        while True:
            sub = self._sub(request.subscription)
            self._sweep(sub)
            limit = min(request.max_messages, MAX_BATCH)
            messages = self._take(sub, limit, 2**62, sub.config.ack_deadline_seconds)
            if messages or self._stopping or time.monotonic() >= until:
                return pubsub.PullResponse(received_messages=messages)
            self._wait(sub, until)

    def streaming_pull(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        """Deliver within the client's flow-control limits until either side closes."""
        try:
            first = next(requests)
        except (StopIteration, grpc.RpcError):
            return
        deadline_s = first.stream_ack_deadline_seconds
        if not 10 <= deadline_s <= 600:
            context.abort(Code.INVALID_ARGUMENT, "stream_ack_deadline_seconds must be 10..600")
        with self._cond:
            try:
                sub = self._sub(first.subscription)
            except RpcError as error:
                context.abort(*error.args)
            self._stream_request(sub, first)
            properties = pubsub.StreamingPullResponse.SubscriptionProperties(
                exactly_once_delivery_enabled=sub.config.enable_exactly_once_delivery,
                message_ordering_enabled=sub.config.enable_message_ordering,
            )
        closed = threading.Event()

        def close() -> None:
            with self._cond:
                closed.set()
                self._cond.notify_all()

        def read() -> None:
            with contextlib.suppress(Exception):  # a cancelled stream raises here; close() follows
                for request in requests:
                    with self._cond:
                        self._stream_request(sub, request)
            close()

        context.add_callback(close)
        threading.Thread(target=read, name="pubsub-stream", daemon=True).start()
        max_messages = first.max_outstanding_messages or MAX_BATCH * 1000
        max_bytes = first.max_outstanding_bytes or 2**62
        name, mine = sub.config.name, dict[str, int]()  # ack id -> size, leased on this stream
        while True:
            with self._cond:
                while True:
                    gone = closed.is_set() or not context.is_active()
                    if gone or self._stopping or self._subs.get(name) is not sub:
                        return
                    self._sweep(sub)
                    mine = {a: n for a, n in mine.items() if a in sub.leases}
                    room = min(max_messages - len(mine), MAX_BATCH)
                    room_bytes = max_bytes - sum(mine.values())
                    if room > 0 and room_bytes > 0 and sub.ready:
                        messages = self._take(sub, room, room_bytes, deadline_s)
                        mine.update((m.ack_id, sub.leases[m.ack_id][0].size) for m in messages)
                        break
                    self._wait(sub, time.monotonic() + 5.0)
            try:
                yield pubsub.StreamingPullResponse(
                    received_messages=messages, subscription_properties=properties
                )
            except GeneratorExit:  # grpc found the stream gone around this send
                self._unsend(sub, [m.ack_id for m in messages])
                raise

    def _unsend(self, sub: _Sub, ack_ids: list[str]) -> None:
        """Put back a batch the closing client never got, so it isn't lost until its deadline."""
        with self._cond:
            for ack_id in reversed(ack_ids):
                lease = sub.leases.pop(ack_id, None)
                if lease is not None:
                    lease[0].attempts -= 1
                    sub.ready.appendleft(lease[0])
            self._cond.notify_all()

    def _stream_request(self, sub: _Sub, request: pubsub.StreamingPullRequest) -> None:
        """Acks and deadline changes sent on the stream; bad ids are ignored there."""
        if request.ack_ids:
            self._ack(sub, list(request.ack_ids))
        if request.modify_deadline_ack_ids:
            seconds = [max(0, min(600, s)) for s in request.modify_deadline_seconds]
            self._modify(sub, list(request.modify_deadline_ack_ids), seconds)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """``--host`` and ``--port``, for whichever CLI hosts the server."""
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to bind, default %(default)s (it has no authentication)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="default %(default)s (the jar's); 0 picks a free one",
    )


def serve_from_args(args: argparse.Namespace, on_listening: Callable[[str], object]) -> None:
    serve(args.host, args.port, on_listening)


def serve(host: str, port: int, on_listening: Callable[[str], object]) -> None:
    """Serve in the foreground until SIGINT or SIGTERM (``consensus-engine pubsub serve``);
    ``on_listening`` gets the address once clients can connect."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with EmbeddedPubSubServer(host, port) as server:
        on_listening(server.address)
        stopping.wait()
