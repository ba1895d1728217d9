"""PubSubBroker.check_health: what readiness probes ask of Pub/Sub.

A publisher needs its topics; a worker also the subscriptions of the queues it
consumes. The check only looks, so a missing resource fails it even where the
broker may create resources.
"""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions as gexc

from brokers.pubsub import PubSubBroker
from consensus_engine.devtools.pubsub_server import EmbeddedPubSubServer

from .conftest import BrokerFactory

pytestmark = pytest.mark.timeout(60)

QUEUE = "jobs"
CONSUMED = {QUEUE, f"{QUEUE}.DQ"}  # what a Dramatiq worker consumes for one queue
TIMEOUT = 3.0


@pytest.fixture
def provisioned(make_broker: BrokerFactory) -> PubSubBroker:
    broker = make_broker()
    broker.declare_queue(QUEUE)
    broker.provision()
    return broker


def test_a_provisioned_broker_is_healthy(provisioned: PubSubBroker) -> None:
    provisioned.check_health(TIMEOUT)
    provisioned.check_health(TIMEOUT, consumed=CONSUMED)


def test_the_check_creates_nothing(make_broker: BrokerFactory) -> None:
    broker = make_broker(auto_create=True)
    broker.declare_queue(QUEUE)

    with pytest.raises(gexc.NotFound):
        broker.check_health(TIMEOUT)
    with pytest.raises(gexc.NotFound):
        broker.check_health(TIMEOUT, consumed=CONSUMED)
    with pytest.raises(gexc.NotFound):  # still missing: the checks did not create it
        broker.check_health(TIMEOUT)


def test_a_deleted_topic_fails_publisher_and_worker(provisioned: PubSubBroker) -> None:
    topic = provisioned.provisioner.topic_path(provisioned.queues[QUEUE].topic)
    provisioned.clients.publisher.delete_topic(request={"topic": topic})

    with pytest.raises(gexc.NotFound):
        provisioned.check_health(TIMEOUT)
    # The subscription outlives its topic, but the worker could not publish the next step.
    with pytest.raises(gexc.NotFound):
        provisioned.check_health(TIMEOUT, consumed=CONSUMED)


def test_a_deleted_subscription_fails_only_a_worker(provisioned: PubSubBroker) -> None:
    subscription = provisioned.provisioner.subscription_path(provisioned.queues[QUEUE].subscription)
    provisioned.clients.subscriber.delete_subscription(request={"subscription": subscription})

    provisioned.check_health(TIMEOUT)
    with pytest.raises(gexc.NotFound):
        provisioned.check_health(TIMEOUT, consumed=CONSUMED)


def test_a_worker_that_consumes_no_queue_is_not_healthy(provisioned: PubSubBroker) -> None:
    for consumed in (set(), {f"{QUEUE}.DQ"}):
        with pytest.raises(RuntimeError, match="no queue"):
            provisioned.check_health(TIMEOUT, consumed=consumed)


def test_a_server_that_is_gone_fails_within_the_timeout(make_broker: BrokerFactory) -> None:
    server = EmbeddedPubSubServer().start()
    try:
        broker = make_broker(emulator_host=server.address)
        broker.declare_queue(QUEUE)
        broker.provision()
        broker.check_health(TIMEOUT, consumed=CONSUMED)
    finally:
        server.stop()

    for consumed in (None, CONSUMED):
        started = time.monotonic()
        with pytest.raises(gexc.GoogleAPICallError):
            broker.check_health(1.0, consumed=consumed)
        assert time.monotonic() - started < 1.0 + 2.0
