"""Fixtures for the Pub/Sub broker tests: a broker per test, real Dramatiq workers.

Every test gets its own namespace (``pubsub_namespace``), so topics and
subscriptions never leak between tests, even under pytest-xdist. Actors are
declared inside the tests with ``dramatiq.actor(broker=broker)``.

``faithful_pubsub`` exists because Google's emulator jar (0.8.20) mishandles
streams that end: it ignores a nack (ack deadline 0, or 1) for messages that a
closed stream received, so they come back only when their lease runs out; for
a few seconds after a stream is cancelled it keeps handing new messages to it;
and after a worker process is killed it goes on handing redeliveries to the
dead stream for one to three lease periods. Real Pub/Sub and the embedded server
redeliver nacked messages at once and expired ones to live streams. Tests of
handing messages back at shutdown, or of recovery after a crash, need that, so
on the jar they run against an embedded server of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import dramatiq
import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from brokers.pubsub import PubSubBroker


class Emulator(Protocol):
    """What the suite's ``pubsub_emulator`` fixture yields."""

    host: str
    name: str
    exact_google_behaviour: bool


BrokerFactory = Callable[..., PubSubBroker]
WorkerFactory = Callable[..., dramatiq.Worker]

PROJECT = "test-project"


@dataclass(frozen=True)
class Backend:
    """A Pub/Sub server some tests use instead of the session's."""

    host: str
    name: str


def subscriber_client(host: str) -> pubsub_v1.SubscriberClient:
    """A plain subscriber client on ``host``, whatever PUBSUB_EMULATOR_HOST says."""
    transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(host))
    return pubsub_v1.SubscriberClient(transport=transport)


@pytest.fixture(scope="session")
def faithful_pubsub(pubsub_emulator: Emulator) -> Iterator[Backend]:
    """A server that redelivers nacked messages at once even after their stream
    closed: the session's, unless that is Google's emulator jar (see above)."""
    if not pubsub_emulator.exact_google_behaviour:
        yield Backend(pubsub_emulator.host, pubsub_emulator.name)
        return
    from consensus_engine.devtools.pubsub_server import EmbeddedPubSubServer

    server = EmbeddedPubSubServer().start()
    try:
        yield Backend(server.address, "embedded (the jar mishandles nacks after a stream ends)")
    finally:
        server.stop()


@pytest.fixture
def make_broker(pubsub_emulator: Emulator, pubsub_namespace: str) -> Iterator[BrokerFactory]:
    """Builds brokers on the test's namespace (keyword arguments override the
    defaults, ``broker_class`` picks a subclass); every one is closed at
    teardown, after the workers stopped."""
    brokers: list[PubSubBroker] = []

    def make(broker_class: type[PubSubBroker] = PubSubBroker, **overrides: Any) -> PubSubBroker:
        options: dict[str, Any] = {
            "project": PROJECT,
            "namespace": pubsub_namespace,
            "emulator_host": pubsub_emulator.host,
            "hold_window": 2,
            "lease_extension": 10,
        }
        options.update(overrides)
        broker = broker_class(**options)
        broker.emit_after("process_boot")
        brokers.append(broker)
        return broker

    yield make
    for broker in reversed(brokers):
        broker.close()


@pytest.fixture
def broker(make_broker: BrokerFactory) -> Iterator[PubSubBroker]:
    """The test's broker, also Dramatiq's global broker while the test runs."""
    previous = dramatiq.broker.global_broker
    broker = make_broker()
    dramatiq.set_broker(broker)
    yield broker
    dramatiq.broker.global_broker = previous


@pytest.fixture
def make_worker(broker: PubSubBroker) -> Iterator[WorkerFactory]:
    """Starts workers (on ``broker`` unless told otherwise); stops the ones still
    running at teardown."""
    workers: list[dramatiq.Worker] = []

    def make(
        on: PubSubBroker | None = None, *, worker_threads: int = 4, **options: Any
    ) -> dramatiq.Worker:
        worker = dramatiq.Worker(
            on or broker, worker_timeout=100, worker_threads=worker_threads, **options
        )
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in reversed(workers):
        if any(thread.is_alive() for thread in worker.workers):
            worker.stop(timeout=30_000)


@pytest.fixture
def worker(make_worker: WorkerFactory) -> dramatiq.Worker:
    """A running worker with four threads on the test's broker."""
    return make_worker()


@pytest.fixture
def subscriber(pubsub_emulator: Emulator) -> Iterator[pubsub_v1.SubscriberClient]:
    """A plain subscriber client on the session's server, for looking at
    subscriptions from outside the broker."""
    client = subscriber_client(pubsub_emulator.host)
    yield client
    with contextlib.suppress(Exception):
        client.close()


def pull_handed_back(host: str, subscription_path: str, expected: int) -> set[str]:
    """The tags (first argument) of messages a plain Pull gets right now, then nacked
    again so that a worker can take them. Proves they were handed back, not leased."""
    subscriber = subscriber_client(host)
    handed_back: dict[str, str] = {}
    try:
        for _ in range(3):
            with contextlib.suppress(gexc.DeadlineExceeded):
                response = subscriber.pull(
                    request={"subscription": subscription_path, "max_messages": 10}, timeout=1
                )
                for received in response.received_messages:
                    tag = dramatiq.Message.decode(received.message.data).args[0]
                    handed_back[tag] = received.ack_id
            if len(handed_back) >= expected:
                break
        if handed_back:
            subscriber.modify_ack_deadline(
                request={
                    "subscription": subscription_path,
                    "ack_ids": list(handed_back.values()),
                    "ack_deadline_seconds": 0,
                }
            )
    finally:
        subscriber.close()
    return set(handed_back)
