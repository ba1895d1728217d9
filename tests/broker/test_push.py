"""Push delivery: a push-mode PubSubBroker, a real Dramatiq worker and the worker's
HTTP server, against the session's Pub/Sub server.

Most tests play Pub/Sub's part themselves: they pull what the broker published
and POST it to ``/pubsub/push`` as Pub/Sub would, so they run on any backend
and see each answer. Google's emulator jar really pushes (checked: it POSTs the
standard envelope, treats 2xx as an ack and redelivers after anything else, but
sends no OIDC token); the end-to-end tests let it do so, and are skipped on the
embedded server, which has no push delivery.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq
import pytest
from dramatiq.errors import QueueJoinTimeout
from google.cloud import pubsub_v1

from brokers.pubsub import (
    Provisioner,
    PubSubBroker,
    PushInbox,
    PushOutcome,
    SubscriptionPolicy,
)
from consensus_engine.workers.http import WorkerHTTPServer

from .conftest import PROJECT, BrokerFactory, Emulator, WorkerFactory
from .test_broker import Events, pull

pytestmark = pytest.mark.timeout(180)

QUEUE = "jobs"
JOIN_MS = 30_000
PUSH_TIMEOUT = 30.0


def envelope(message: Any, subscription: str = "projects/p/subscriptions/s") -> dict[str, Any]:
    """The body Pub/Sub POSTs for a received message (``PubsubMessage``)."""
    return {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": "2024-01-01T00:00:00Z",
        },
        "subscription": subscription,
    }


def dramatiq_envelope(message: dramatiq.Message[Any], **attributes: str) -> dict[str, Any]:
    """An envelope carrying a Dramatiq message that was never published."""
    return {
        "message": {
            "data": base64.b64encode(message.encode()).decode(),
            "attributes": attributes,
            "messageId": "1",
        },
        "subscription": "projects/p/subscriptions/s",
    }


def post(port: int, body: dict[str, Any] | bytes) -> int:
    """POST to the worker's push endpoint; the HTTP status."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/pubsub/push",
        data=data,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=PUSH_TIMEOUT + 30) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class Relay:
    """Pub/Sub's part: take what the broker published, push it to the worker."""

    def __init__(
        self, broker: PubSubBroker, subscriber: pubsub_v1.SubscriberClient, port: int
    ) -> None:
        self.broker = broker
        self.subscriber = subscriber
        self.port = port

    def path(self, queue_name: str, *, dead_letters: bool = False) -> str:
        resources = self.broker.queues[queue_name]
        name = resources.dead_letter_subscription if dead_letters else resources.subscription
        return self.broker.provisioner.subscription_path(name)

    def take(self, queue_name: str, *, dead_letters: bool = False) -> Any:
        """The one message published to the queue (or its dead letters)."""
        path = self.path(queue_name, dead_letters=dead_letters)
        [message] = pull(self.subscriber, path, until=lambda got: len(got) >= 1)
        return message

    def push(self, queue_name: str) -> int:
        return post(self.port, envelope(self.take(queue_name), self.path(queue_name)))


@pytest.fixture
def push_broker(make_broker: BrokerFactory) -> PubSubBroker:
    return make_broker(delivery="push")


@pytest.fixture
def server(push_broker: PubSubBroker) -> Iterator[WorkerHTTPServer]:
    server = WorkerHTTPServer(
        "127.0.0.1",
        0,
        checks={},
        inbox=push_broker.push_inbox,
        verifier=None,
        push_timeout=PUSH_TIMEOUT,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def relay(
    push_broker: PubSubBroker, subscriber: pubsub_v1.SubscriberClient, server: WorkerHTTPServer
) -> Relay:
    return Relay(push_broker, subscriber, server.port)


def inbox_of(broker: PubSubBroker) -> PushInbox:
    """The broker's push inbox, with ``a``, the actor the messages below name, declared:
    a pushed message for an actor the broker does not know is refused."""
    assert broker.push_inbox is not None
    if "a" not in broker.actors:
        dramatiq.actor(actor_name="a", broker=broker, queue_name=QUEUE)(_takes_anything)
    return broker.push_inbox


def _takes_anything(*_args: Any) -> None:
    """Never run here: the inbox tests stop where Dramatiq would take over."""


# -- through the HTTP server, with a worker -----------------------------------------------


def test_pushed_message_runs_once_and_is_acked(
    push_broker: PubSubBroker, make_worker: WorkerFactory, relay: Relay
) -> None:
    ran = Events()

    @dramatiq.actor(broker=push_broker, queue_name=QUEUE)
    def record(tag: str) -> None:
        ran.add(tag)

    worker = make_worker(push_broker)
    record.send("first")
    with pytest.raises(QueueJoinTimeout):
        push_broker.join(QUEUE, timeout=100)  # published, not pushed yet

    assert relay.push(QUEUE) == 204
    push_broker.join(QUEUE, timeout=JOIN_MS)  # the push settled it for join
    worker.join()
    assert ran.items == ["first"]


def test_failed_message_is_dead_lettered_and_acked(
    push_broker: PubSubBroker, make_worker: WorkerFactory, relay: Relay
) -> None:
    token = uuid.uuid4().hex

    @dramatiq.actor(broker=push_broker, queue_name=QUEUE, max_retries=0)
    def explode() -> None:
        raise ValueError(f"boom {token}")

    make_worker(push_broker)
    sent = explode.send()

    assert relay.push(QUEUE) == 204  # handled: Pub/Sub must not push it again
    push_broker.join(QUEUE, timeout=JOIN_MS)
    letter = relay.take(QUEUE, dead_letters=True)
    assert letter.attributes["dramatiq_message_id"] == sent.message_id
    assert token in letter.attributes["dead_letter_reason"]
    assert dramatiq.Message.decode(letter.data).actor_name == "explode"


def test_delayed_message_runs_after_its_eta(
    push_broker: PubSubBroker, make_worker: WorkerFactory, relay: Relay
) -> None:
    """The delay queue's push waits while Dramatiq holds the message until its
    eta, moves it to the queue (a new publish) and acks; that one is pushed next."""
    ran = Events()

    @dramatiq.actor(broker=push_broker, queue_name=QUEUE)
    def later() -> None:
        ran.add(time.time())

    make_worker(push_broker)
    sent = later.send_with_options(delay=500)
    eta = sent.options["eta"] / 1000

    assert relay.push(f"{QUEUE}.DQ") == 204
    assert time.time() >= eta
    assert ran.items == []
    assert relay.push(QUEUE) == 204
    push_broker.join(QUEUE, timeout=JOIN_MS)
    [at] = ran.items
    assert at >= eta


def test_push_without_a_running_worker_asks_for_redelivery(
    push_broker: PubSubBroker, make_worker: WorkerFactory, relay: Relay
) -> None:
    ran = Events()

    @dramatiq.actor(broker=push_broker, queue_name=QUEUE)
    def record(tag: str) -> None:
        ran.add(tag)

    record.send("early")
    early = relay.take(QUEUE)
    assert post(relay.port, envelope(early)) == 503  # no worker yet

    worker = make_worker(push_broker)
    worker.stop()
    assert post(relay.port, envelope(early)) == 503  # its worker stopped

    with pytest.raises(QueueJoinTimeout):
        push_broker.join(QUEUE, timeout=100)
    assert ran.items == []


def test_publish_failure_before_the_ack_asks_for_redelivery(
    make_broker: BrokerFactory, make_worker: WorkerFactory, subscriber: pubsub_v1.SubscriberClient
) -> None:
    """The retry cannot be published (the delay queue's topic is missing and may
    not be created); Dramatiq only logs that and acks, so the push must answer
    non-2xx, and the redelivery, once the retry can be published, is acked."""
    broker = make_broker(delivery="push", auto_create=False)
    calls = Events()

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=3, min_backoff=100)
    def fragile() -> None:
        calls.add("called")
        raise RuntimeError("always")

    broker.provisioner.ensure(broker.queues[QUEUE], delay=False)
    server = WorkerHTTPServer(
        "127.0.0.1", 0, checks={}, inbox=broker.push_inbox, verifier=None, push_timeout=30
    )
    server.start()
    try:
        make_worker(broker)
        fragile.send()
        relay = Relay(broker, subscriber, server.port)
        received = relay.take(QUEUE)

        assert post(server.port, envelope(received)) == 503
        broker.provisioner.ensure(broker.queues[f"{QUEUE}.DQ"], delay=True)
        assert post(server.port, envelope(received)) == 204
    finally:
        server.stop()
    assert calls.items == ["called", "called"]
    retry = relay.take(f"{QUEUE}.DQ")
    assert dramatiq.Message.decode(retry.data).options["retries"] == 1


def test_malformed_pushes_are_rejected(push_broker: PubSubBroker, relay: Relay) -> None:
    push_broker.declare_queue(QUEUE)
    push_broker.provisioner.ensure(push_broker.queues[QUEUE], delay=False)
    assert post(relay.port, b"{not json") == 400
    assert post(relay.port, {"subscription": "s"}) == 400
    garbage: dict[str, Any] = {"message": {"data": base64.b64encode(b"\x00garbage").decode()}}
    assert post(relay.port, garbage) == 400  # no queue to file it under
    stranger: dramatiq.Message[Any] = dramatiq.Message(
        queue_name="undeclared", actor_name="noop", args=(), kwargs={}, options={}
    )
    assert post(relay.port, dramatiq_envelope(stranger)) == 400

    # With the queue named in its attributes, the bytes are dead-lettered as
    # they came, and the push is answered as handled.
    garbage["message"]["attributes"] = {"dramatiq_queue": QUEUE}
    assert post(relay.port, garbage) == 204
    letter = relay.take(QUEUE, dead_letters=True)
    assert letter.data == b"\x00garbage"
    assert "DecodeError" in letter.attributes["dead_letter_reason"]


# -- the inbox and its consumers, without a worker ----------------------------------------


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def a_message(tag: str) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name=QUEUE, actor_name="a", args=(tag,), kwargs={}, options={})


def test_deadline_withdraws_a_message_not_yet_taken(
    push_broker: PubSubBroker, pool: ThreadPoolExecutor
) -> None:
    push_broker.declare_queue(QUEUE)
    inbox = inbox_of(push_broker)
    consumer = push_broker.consume(QUEUE, prefetch=1, timeout=100)

    assert inbox.deliver(dramatiq_envelope(a_message("late")), timeout=0.2) is PushOutcome.RETRY
    assert next(consumer) is None  # withdrawn: Dramatiq never sees it

    pending = pool.submit(inbox.deliver, dramatiq_envelope(a_message("on time")), timeout=30)
    message = next(consumer)
    assert message is not None
    assert message.args == ("on time",)
    consumer.ack(message)
    assert pending.result(timeout=10) is PushOutcome.ACKED


def test_prefetch_bounds_what_dramatiq_holds(
    push_broker: PubSubBroker, pool: ThreadPoolExecutor
) -> None:
    push_broker.declare_queue(QUEUE)
    inbox = inbox_of(push_broker)
    consumer = push_broker.consume(QUEUE, prefetch=1, timeout=200)
    first = pool.submit(inbox.deliver, dramatiq_envelope(a_message("first")), timeout=30)
    taken = next(consumer)
    assert taken is not None
    second = pool.submit(inbox.deliver, dramatiq_envelope(a_message("second")), timeout=30)

    assert next(consumer) is None  # one out already
    consumer.ack(taken)
    assert first.result(timeout=10) is PushOutcome.ACKED
    again = next(consumer)
    assert again is not None
    assert again.args == ("second",)
    consumer.requeue([again])  # a worker shutting down gives it back
    assert second.result(timeout=10) is PushOutcome.RETRY


def test_closing_answers_waiting_pushes(
    push_broker: PubSubBroker, pool: ThreadPoolExecutor
) -> None:
    push_broker.declare_queue(QUEUE)
    inbox = inbox_of(push_broker)
    consumer = push_broker.consume(QUEUE, prefetch=1, timeout=100)
    waiting = pool.submit(inbox.deliver, dramatiq_envelope(a_message("w")), timeout=30)
    # deliver blocks only once the consumer has the message.
    assert not futures.wait([waiting], timeout=0.2).done

    consumer.close()
    assert waiting.result(timeout=10) is PushOutcome.RETRY
    assert inbox.deliver(dramatiq_envelope(a_message("after")), timeout=30) is PushOutcome.RETRY


def test_far_off_delay_is_parked_in_the_request(
    push_broker: PubSubBroker, pool: ThreadPoolExecutor
) -> None:
    """A delayed message Dramatiq could not move before the request's deadline
    is not handed over (its later ack would be lost on a redelivered message):
    the request holds it, then asks for redelivery."""
    push_broker.declare_queue(QUEUE)
    inbox = inbox_of(push_broker)
    consumer = push_broker.consume(f"{QUEUE}.DQ", prefetch=10, timeout=100)
    far: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=f"{QUEUE}.DQ",
        actor_name="a",
        args=(),
        kwargs={},
        options={"eta": int((time.time() + 60) * 1000)},
    )
    started = time.monotonic()
    assert inbox.deliver(dramatiq_envelope(far), timeout=0.5) is PushOutcome.RETRY
    assert time.monotonic() - started >= 0.5
    assert next(consumer) is None

    # A worker shutting down ends the wait at once.
    parked = pool.submit(inbox.deliver, dramatiq_envelope(far), timeout=30)
    consumer.close()
    assert parked.result(timeout=10) is PushOutcome.RETRY


# -- provisioning and the emulator's own pushes -------------------------------------------


def test_policy_refuses_half_a_push_configuration() -> None:
    with pytest.raises(ValueError, match="need a push_endpoint"):
        SubscriptionPolicy(push_service_account="a@b.iam.gserviceaccount.com")
    with pytest.raises(ValueError, match="http"):
        SubscriptionPolicy(push_endpoint="worker:8080/pubsub/push")
    with pytest.raises(ValueError, match="push_service_account"):
        SubscriptionPolicy(push_endpoint="https://w.example/pubsub/push", push_audience="aud")


@pytest.fixture
def pushing_emulator(pubsub_emulator: Emulator) -> None:
    if not pubsub_emulator.exact_google_behaviour:
        pytest.skip(
            "only Google's emulator jar delivers by push; the embedded server refuses "
            "push subscriptions"
        )


@pytest.mark.usefixtures("pushing_emulator")
def test_provisioning_switches_queue_subscriptions_to_push_and_back(
    push_broker: PubSubBroker, subscriber: pubsub_v1.SubscriberClient
) -> None:
    push_broker.declare_queue(QUEUE)
    endpoint = "https://worker.example.run.app/pubsub/push"
    account = "pusher@test-project.iam.gserviceaccount.com"
    pushing = Provisioner(
        push_broker.clients,
        project=PROJECT,
        policy=SubscriptionPolicy(push_endpoint=endpoint, push_service_account=account),
    )
    pulling = Provisioner(push_broker.clients, project=PROJECT, policy=SubscriptionPolicy())
    queue, delay = push_broker.queues[QUEUE], push_broker.queues[f"{QUEUE}.DQ"]

    def config(subscription: str) -> tuple[str, str]:
        found = subscriber.get_subscription(
            request={"subscription": push_broker.provisioner.subscription_path(subscription)}
        )
        return found.push_config.push_endpoint, found.push_config.oidc_token.service_account_email

    pushing.apply(queue, delay=False)
    pushing.apply(delay, delay=True)
    assert config(queue.subscription) == (endpoint, account)
    assert config(delay.subscription) == (endpoint, account)
    assert config(queue.dead_letter_subscription) == ("", "")

    again = pushing.apply(queue, delay=False) + pushing.apply(delay, delay=True)
    assert not [line for line in again if "subscription" in line and "unchanged" not in line]

    back = pulling.apply(queue, delay=False)
    updated = [line for line in back if line.startswith("updated")]
    assert updated == [
        f"updated subscription {push_broker.provisioner.subscription_path(queue.subscription)} "
        "(push_config)"
    ]
    assert config(queue.subscription) == ("", "")


@pytest.mark.usefixtures("pushing_emulator")
def test_the_emulator_pushes_to_the_worker(
    make_broker: BrokerFactory, make_worker: WorkerFactory, subscriber: pubsub_v1.SubscriberClient
) -> None:
    """End to end: the emulator itself pushes, a delayed message included."""
    broker = make_broker(delivery="push", auto_create=False)
    ran = Events()

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def record(tag: str) -> None:
        ran.add((tag, time.time()))

    server = WorkerHTTPServer(
        "127.0.0.1", 0, checks={}, inbox=broker.push_inbox, verifier=None, push_timeout=30
    )
    server.start()
    endpoint = f"http://127.0.0.1:{server.port}/pubsub/push"
    provisioner = Provisioner(
        broker.clients, project=PROJECT, policy=SubscriptionPolicy(push_endpoint=endpoint)
    )
    pushed = [broker.queues[QUEUE], broker.queues[f"{QUEUE}.DQ"]]
    try:
        for resources in pushed:
            provisioner.apply(resources, delay=resources is pushed[1])
        make_worker(broker)
        record.send("now")
        eta = record.send_with_options(args=("later",), delay=500).options["eta"] / 1000
        broker.join(QUEUE, timeout=JOIN_MS)
    finally:
        for resources in pushed:  # the emulator would go on pushing to a closed port
            with contextlib.suppress(Exception):
                subscriber.delete_subscription(
                    request={"subscription": provisioner.subscription_path(resources.subscription)}
                )
        server.stop()

    done = dict(ran.items)
    assert sorted(done) == ["later", "now"]
    assert done["later"] >= eta
