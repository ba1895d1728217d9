"""The Pub/Sub test backends honour the contract the broker relies on.

Every contract test runs against the session backend (Google's emulator jar
where the image has it) and, when that is not already the embedded server, against the
embedded server too: the jar is the reference the embedded server is checked against.
The real ``google-cloud-pubsub`` clients do the talking.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from google.api_core import exceptions
from google.protobuf import timestamp_pb2
from google.pubsub_v1.types import pubsub
from support.pubsub import (
    EMBEDDED,
    EXTERNAL,
    GOOGLE_EMULATOR,
    PubSubBackend,
    publisher_client,
    selected_backend,
    start_pubsub_backend,
    subscriber_client,
)

from consensus_engine.devtools.emulator import find_emulator_jar, start_emulator
from consensus_engine.devtools.process import ProcessError
from consensus_engine.devtools.pubsub_server import EmbeddedPubSubServer

PROJECT = "projects/ce-test"
# pull_now() uses return_immediately: deprecated, but the only way to ask "anything right now?"
pytestmark = pytest.mark.filterwarnings("ignore:The return_immediately flag:DeprecationWarning")
SESSION_NAME = selected_backend()[0]
TARGETS = [pytest.param("session", id=SESSION_NAME)]
if SESSION_NAME != EMBEDDED:
    TARGETS.append(pytest.param(EMBEDDED, id=EMBEDDED))


@dataclass
class Target:
    """One server under test, with clients on it and helpers that name this test's resources."""

    name: str
    host: str
    namespace: str
    publisher: Any
    subscriber: Any

    def topic(self, suffix: str = "topic", *, create: bool = True) -> str:
        name = f"{PROJECT}/topics/{self.namespace}-{suffix}"
        if create:
            self.publisher.create_topic(name=name)
        return name

    def subscription(self, topic: str, suffix: str = "sub", **config: Any) -> str:
        name = f"{PROJECT}/subscriptions/{self.namespace}-{suffix}"
        self.subscriber.create_subscription(request={"name": name, "topic": topic, **config})
        return name

    def publish(self, topic: str, *payloads: bytes, **attributes: str) -> list[str]:
        futures = [self.publisher.publish(topic, data, **attributes) for data in payloads]
        return [future.result(timeout=10) for future in futures]

    def pull(self, subscription: str, count: int, *, timeout_s: float = 10.0) -> list[Any]:
        """Long-poll until ``count`` messages arrived (fewer only when time runs out)."""
        received: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(received) < count and (left := deadline - time.monotonic()) > 0:
            try:  # the jar holds an empty pull until the deadline, then the client gives up
                response = self.subscriber.pull(
                    subscription=subscription,
                    max_messages=count - len(received),
                    timeout=min(left, 5.0),
                    retry=None,
                )
            except exceptions.DeadlineExceeded:
                continue
            received += response.received_messages
        return received

    def pull_now(self, subscription: str) -> list[Any]:
        """What is deliverable right now, without waiting."""
        response = self.subscriber.pull(
            request={"subscription": subscription, "max_messages": 100, "return_immediately": True}
        )
        return list(response.received_messages)


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedPubSubServer]:
    with EmbeddedPubSubServer() as server:
        yield server


@pytest.fixture(params=TARGETS)
def target(
    request: pytest.FixtureRequest, pubsub_emulator: PubSubBackend, pubsub_namespace: str
) -> Iterator[Target]:
    if request.param == "session":
        name, host = pubsub_emulator.name, pubsub_emulator.host
    else:
        name, host = EMBEDDED, request.getfixturevalue("embedded").address
    publisher, subscriber = publisher_client(host), subscriber_client(host)
    try:
        yield Target(name, host, pubsub_namespace, publisher, subscriber)
    finally:
        subscriber.close()
        publisher.stop()
        publisher.transport.close()


# -- resources ---------------------------------------------------------------------------------


def test_topic_lifecycle_and_error_codes(target: Target) -> None:
    topic = target.topic()
    assert target.publisher.get_topic(topic=topic).name == topic
    assert topic in {t.name for t in target.publisher.list_topics(project=PROJECT)}
    with pytest.raises(exceptions.AlreadyExists):
        target.publisher.create_topic(name=topic)
    target.publisher.delete_topic(topic=topic)
    with pytest.raises(exceptions.NotFound):
        target.publisher.get_topic(topic=topic)
    with pytest.raises(exceptions.NotFound):
        target.publisher.delete_topic(topic=topic)
    with pytest.raises(exceptions.NotFound):
        target.publisher.publish(topic, b"x").result(timeout=10)


def test_subscription_lifecycle_and_error_codes(target: Target) -> None:
    topic = target.topic()
    missing = target.topic("missing", create=False)
    with pytest.raises(exceptions.NotFound):
        target.subscription(missing)
    sub = target.subscription(topic)
    config = target.subscriber.get_subscription(subscription=sub)
    assert (config.topic, config.ack_deadline_seconds) == (topic, 10)
    assert config.message_retention_duration.total_seconds() == 7 * 24 * 3600
    assert config.dead_letter_policy.dead_letter_topic == ""
    with pytest.raises(exceptions.AlreadyExists):
        target.subscription(topic)
    assert list(target.publisher.list_topic_subscriptions(topic=topic)) == [sub]
    assert sub in {s.name for s in target.subscriber.list_subscriptions(project=PROJECT)}

    target.publisher.delete_topic(topic=topic)  # the subscription outlives its topic
    assert target.subscriber.get_subscription(subscription=sub).topic == "_deleted-topic_"
    target.subscriber.delete_subscription(subscription=sub)
    for call in (
        lambda: target.subscriber.get_subscription(subscription=sub),
        lambda: target.subscriber.delete_subscription(subscription=sub),
        lambda: target.pull_now(sub),
    ):
        with pytest.raises(exceptions.NotFound):
            call()


@pytest.mark.parametrize("bad_id", ["ab", "1abc", "goog-topic", "with space", "x" * 256, "a/b"])
def test_invalid_resource_names(target: Target, bad_id: str) -> None:
    topic = target.topic()
    with pytest.raises(exceptions.InvalidArgument):
        target.publisher.create_topic(name=f"{PROJECT}/topics/{bad_id}")
    with pytest.raises(exceptions.InvalidArgument):
        target.subscriber.create_subscription(name=f"{PROJECT}/subscriptions/{bad_id}", topic=topic)


def test_subscription_settings_are_validated(target: Target) -> None:
    topic, dead = target.topic(), target.topic("dead", create=False)
    with pytest.raises(exceptions.InvalidArgument):
        target.subscription(topic, ack_deadline_seconds=601)
    policy = {"dead_letter_topic": dead, "max_delivery_attempts": 5}
    with pytest.raises(exceptions.NotFound):
        target.subscription(topic, dead_letter_policy=policy)
    target.topic("dead")
    for attempts in (4, 101):
        with pytest.raises(exceptions.OutOfRange):
            target.subscription(
                topic, dead_letter_policy={**policy, "max_delivery_attempts": attempts}
            )
    sub = target.subscription(topic, dead_letter_policy={"dead_letter_topic": dead})
    assert (
        target.subscriber.get_subscription(
            subscription=sub
        ).dead_letter_policy.max_delivery_attempts
        == 5
    )


def test_update_subscription(target: Target) -> None:
    topic, dead = target.topic(), target.topic("dead")
    sub = target.subscription(topic)
    updated = target.subscriber.update_subscription(
        request={
            "subscription": {
                "name": sub,
                "ack_deadline_seconds": 30,
                "dead_letter_policy": {"dead_letter_topic": dead, "max_delivery_attempts": 7},
            },
            "update_mask": {"paths": ["ack_deadline_seconds", "dead_letter_policy"]},
        }
    )
    assert updated.ack_deadline_seconds == 30
    config = target.subscriber.get_subscription(subscription=sub)
    assert config.ack_deadline_seconds == 30
    assert (
        config.dead_letter_policy.dead_letter_topic,
        config.dead_letter_policy.max_delivery_attempts,
    ) == (dead, 7)
    with pytest.raises(exceptions.InvalidArgument):
        target.subscriber.update_subscription(
            request={
                "subscription": {"name": sub, "topic": dead},
                "update_mask": {"paths": ["topic"]},
            }
        )
    with pytest.raises(exceptions.NotFound):
        target.subscriber.update_subscription(
            request={
                "subscription": {"name": f"{sub}-missing", "ack_deadline_seconds": 20},
                "update_mask": {"paths": ["ack_deadline_seconds"]},
            }
        )


# -- delivery ----------------------------------------------------------------------------------


def test_publish_pull_and_ack(target: Target) -> None:
    topic = target.topic()
    target.publish(topic, b"before any subscription")  # dropped: nobody subscribed yet
    sub = target.subscription(topic)
    ids = target.publish(topic, b"one", b"two", b"three", kind="test")
    assert len(set(ids)) == 3

    received = target.pull(sub, 3)
    assert sorted(m.message.data for m in received) == [b"one", b"three", b"two"]
    assert {m.message.message_id for m in received} == set(ids)
    for m in received:
        assert dict(m.message.attributes) == {"kind": "test"}
        assert m.message.publish_time.timestamp() == pytest.approx(time.time(), abs=30)
        assert m.delivery_attempt == 0  # only set with a dead-letter policy
    assert target.pull_now(sub) == []

    acked, nacked = received[0], received[1:]
    target.subscriber.acknowledge(subscription=sub, ack_ids=[acked.ack_id])
    all_ids = [m.ack_id for m in received]  # nacking an acked message is a no-op
    target.subscriber.modify_ack_deadline(subscription=sub, ack_ids=all_ids, ack_deadline_seconds=0)
    again = target.pull(sub, 2)
    assert sorted(m.message.message_id for m in again) == sorted(
        m.message.message_id for m in nacked
    )
    assert not {m.ack_id for m in again} & set(all_ids)
    target.subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in again])
    target.subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=all_ids + [m.ack_id for m in again], ack_deadline_seconds=0
    )
    assert target.pull_now(sub) == []


def test_ack_id_errors(target: Target) -> None:
    topic = target.topic()
    sub, other = target.subscription(topic), target.subscription(topic, "other")
    target.publish(topic, b"x")
    (message,) = target.pull(sub, 1)
    with pytest.raises(exceptions.InvalidArgument):
        target.subscriber.acknowledge(subscription=other, ack_ids=[message.ack_id])
    with pytest.raises(exceptions.InvalidArgument):
        target.subscriber.acknowledge(subscription=sub, ack_ids=[])
    with pytest.raises(exceptions.InvalidArgument):
        target.subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[message.ack_id], ack_deadline_seconds=-1
        )
    with pytest.raises(exceptions.InvalidArgument):
        target.subscriber.pull(request={"subscription": sub, "max_messages": 0})
    target.subscriber.acknowledge(subscription=sub, ack_ids=[message.ack_id])
    target.subscriber.acknowledge(subscription=sub, ack_ids=[message.ack_id])  # stale: ignored


def test_expired_lease_is_redelivered_and_modack_extends(target: Target) -> None:
    topic = target.topic()
    sub = target.subscription(topic)
    target.publish(topic, b"expires", b"extended")
    received = {m.message.data: m for m in target.pull(sub, 2)}
    ids = [received[b"expires"].ack_id, received[b"extended"].ack_id]
    started = time.monotonic()
    target.subscriber.modify_ack_deadline(subscription=sub, ack_ids=ids, ack_deadline_seconds=1)
    target.subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=ids[1:], ack_deadline_seconds=60
    )

    (again,) = target.pull(sub, 1)
    assert again.message.data == b"expires"
    assert time.monotonic() - started >= 0.8
    time.sleep(max(0.0, started + 1.5 - time.monotonic()))
    assert target.pull_now(sub) == []  # the extended lease still holds


def test_dead_letter_after_max_attempts(target: Target) -> None:
    topic, dead = target.topic(), target.topic("dead")
    dead_sub = target.subscription(dead, "dead-sub")
    policy = {"dead_letter_topic": dead, "max_delivery_attempts": 5}
    sub = target.subscription(topic, dead_letter_policy=policy)
    (message_id,) = target.publish(topic, b"poison", origin="test")

    attempts = []
    for _ in range(5):
        (message,) = target.pull(sub, 1)
        attempts.append(message.delivery_attempt)
        target.subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[message.ack_id], ack_deadline_seconds=0
        )
    assert attempts == [1, 2, 3, 4, 5]
    # The jar forwards a message when it would deliver it again, so ask once
    assert target.pull_now(sub) == []

    (dead_letter,) = target.pull(dead_sub, 1)
    assert dead_letter.message.data == b"poison"
    assert dead_letter.message.message_id != message_id  # republished: a new id
    attributes = dict(dead_letter.message.attributes)
    assert attributes.pop("CloudPubSubDeadLetterSourceTopicPublishTime").endswith("Z")
    assert attributes == {
        "origin": "test",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "CloudPubSubDeadLetterSourceSubscription": sub.rpartition("/")[2],
        "CloudPubSubDeadLetterSourceSubscriptionProject": PROJECT.rpartition("/")[2],
    }


def test_seek_to_now_purges(target: Target) -> None:
    topic = target.topic()
    sub = target.subscription(topic)
    target.publish(topic, b"old-1", b"old-2", b"old-3")
    assert len(target.pull(sub, 1)) == 1  # one outstanding, two waiting
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    target.subscriber.seek(request={"subscription": sub, "time": now})
    assert target.pull_now(sub) == []
    target.publish(topic, b"new")
    assert [m.message.data for m in target.pull(sub, 1)] == [b"new"]


def test_streaming_pull_respects_flow_control(target: Target) -> None:
    from google.cloud.pubsub_v1.types import FlowControl  # type: ignore[import-untyped, unused-ignore]

    topic = target.topic()
    sub = target.subscription(topic)
    total = 12
    lock, done = threading.Lock(), threading.Event()
    seen: list[bytes] = []
    outstanding = peak = 0

    def callback(message: Any) -> None:
        nonlocal outstanding, peak
        with lock:
            outstanding += 1
            peak = max(peak, outstanding)
        time.sleep(0.05)
        with lock:
            outstanding -= 1
            seen.append(message.data)
            if len(seen) >= total:
                done.set()
        message.ack()

    target.publish(topic, *(f"m{i}".encode() for i in range(total)))
    future = target.subscriber.subscribe(sub, callback, flow_control=FlowControl(max_messages=3))
    try:
        assert done.wait(20), f"got {len(seen)} of {total}"
    finally:
        future.cancel()
        future.result(timeout=10)
    assert sorted(seen) == sorted(f"m{i}".encode() for i in range(total))
    assert 1 <= peak <= 3


# -- the embedded server on its own ------------------------------------------------------------


def _open_stream(host: str, first: pubsub.StreamingPullRequest) -> tuple[Any, Any, Any]:
    """A raw StreamingPull call: (send queue, response iterator, channel)."""
    import queue

    channel = grpc.insecure_channel(host)
    call = channel.stream_stream(
        "/google.pubsub.v1.Subscriber/StreamingPull",
        request_serializer=pubsub.StreamingPullRequest.serialize,
        response_deserializer=pubsub.StreamingPullResponse.deserialize,
    )
    outbox: queue.Queue[Any] = queue.Queue()
    outbox.put(first)
    return outbox, call(iter(outbox.get, None)), channel


def test_embedded_streaming_pull_flow_control_on_the_server(
    embedded: EmbeddedPubSubServer, pubsub_namespace: str
) -> None:
    """The real service stops sending at max_outstanding_messages; the jar ignores it."""
    publisher, subscriber = (
        publisher_client(embedded.address),
        subscriber_client(embedded.address),
    )
    topic = f"{PROJECT}/topics/{pubsub_namespace}"
    sub = f"{PROJECT}/subscriptions/{pubsub_namespace}"
    publisher.create_topic(name=topic)
    subscriber.create_subscription(
        request={"name": sub, "topic": topic, "enable_message_ordering": True}
    )
    for i in range(5):
        publisher.publish(topic, f"m{i}".encode()).result(timeout=10)
    first = pubsub.StreamingPullRequest(
        subscription=sub, stream_ack_deadline_seconds=10, max_outstanding_messages=2
    )
    outbox, responses, channel = _open_stream(embedded.address, first)
    try:
        response = next(responses)
        assert [m.message.data for m in response.received_messages] == [b"m0", b"m1"]
        assert response.subscription_properties.message_ordering_enabled
        outbox.put(pubsub.StreamingPullRequest(ack_ids=[response.received_messages[0].ack_id]))
        assert [m.message.data for m in next(responses).received_messages] == [b"m2"]
        held = response.received_messages[1].ack_id
        outbox.put(
            pubsub.StreamingPullRequest(modify_deadline_ack_ids=[held], modify_deadline_seconds=[0])
        )
        assert [m.message.data for m in next(responses).received_messages] == [b"m1"]
        outbox.put(None)  # half-close: the server ends the stream cleanly
        assert list(responses) == []
    finally:
        channel.close()
        subscriber.close()
        publisher.stop()


def test_embedded_rejects_what_it_does_not_implement(embedded: EmbeddedPubSubServer) -> None:
    subscriber = subscriber_client(embedded.address)
    try:
        with pytest.raises(exceptions.MethodNotImplemented):
            subscriber.seek(
                request={
                    "subscription": f"{PROJECT}/subscriptions/abc",
                    "snapshot": f"{PROJECT}/snapshots/s",
                }
            )
        with pytest.raises(exceptions.MethodNotImplemented):
            subscriber.create_snapshot(
                name=f"{PROJECT}/snapshots/s", subscription=f"{PROJECT}/subscriptions/abc"
            )
    finally:
        subscriber.close()


# -- backend selection -------------------------------------------------------------------------


def test_backend_selection(tmp_path: Path) -> None:
    assert (
        selected_backend({"PUBSUB_EMULATOR_HOST": "h:1", "CE_PUBSUB_BACKEND": EMBEDDED})[0]
        == EXTERNAL
    )
    assert selected_backend({"CE_PUBSUB_BACKEND": EMBEDDED})[0] == EMBEDDED
    expected = GOOGLE_EMULATOR if find_emulator_jar() else EMBEDDED
    assert selected_backend({})[0] == expected
    assert find_emulator_jar(tmp_path) is None


def test_forced_embedded_and_external_backends() -> None:
    embedded = start_pubsub_backend({"CE_PUBSUB_BACKEND": EMBEDDED})
    try:
        assert (embedded.name, embedded.exact_google_behaviour) == (EMBEDDED, False)
        external = start_pubsub_backend({"PUBSUB_EMULATOR_HOST": embedded.host})
        assert (external.name, external.host, external.exact_google_behaviour) == (
            EXTERNAL,
            embedded.host,
            False,
        )
        external.stop()  # not ours to stop: the embedded server still answers
        publisher = publisher_client(embedded.host)
        publisher.create_topic(name=f"{PROJECT}/topics/still-up")
        publisher.stop()
    finally:
        embedded.stop()
        embedded.stop()


def test_pubsub_emulator_fixture_sets_the_environment(pubsub_emulator: PubSubBackend) -> None:
    assert os.environ["PUBSUB_EMULATOR_HOST"] == pubsub_emulator.host
    assert pubsub_emulator.name in {GOOGLE_EMULATOR, EMBEDDED, EXTERNAL}


def test_pubsub_marker_is_added(
    request: pytest.FixtureRequest, pubsub_emulator: PubSubBackend
) -> None:
    assert request.node.get_closest_marker("pubsub") is not None


@pytest.mark.usefixtures("requires_google_emulator")
def test_google_emulator_quirks_the_embedded_server_does_not_copy(
    pubsub_emulator: PubSubBackend, pubsub_namespace: str
) -> None:
    """Pins the jar's known deviations from the real service, so an image update shows up."""
    publisher, subscriber = (
        publisher_client(pubsub_emulator.host),
        subscriber_client(pubsub_emulator.host),
    )
    topic = f"{PROJECT}/topics/{pubsub_namespace}"
    try:
        publisher.create_topic(name=topic)
        sub = subscriber.create_subscription(
            name=f"{PROJECT}/subscriptions/{pubsub_namespace}", topic=topic, ack_deadline_seconds=5
        )
        assert sub.ack_deadline_seconds == 5  # the real service requires 10..600
        with pytest.raises(exceptions.InvalidArgument):  # labels can't be updated on the jar
            publisher.update_topic(
                request={
                    "topic": {"name": topic, "labels": {"a": "b"}},
                    "update_mask": {"paths": ["labels"]},
                }
            )
    finally:
        subscriber.close()
        publisher.stop()


def test_emulator_process_reports_a_failed_start(tmp_path: Path) -> None:
    if shutil.which("java") is None:
        pytest.skip("needs java")
    bogus = tmp_path / "not-a.jar"
    bogus.write_text("not a jar")
    with pytest.raises(ProcessError) as caught:
        start_emulator(bogus, timeout_s=30)
    assert caught.value.exited
    assert "not-a.jar" in str(caught.value)
