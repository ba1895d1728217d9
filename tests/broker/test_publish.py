"""A confirmed publish is one Publish call: retried through a short outage, given up on
(as PublishFailed) once ``publish_timeout`` has passed. The emulator is reached
through a TCP proxy that the tests cut."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from support.tcp_proxy import TcpProxy

from brokers.pubsub import PublishFailed, PubSubBroker

from .conftest import BrokerFactory, Emulator

pytestmark = pytest.mark.timeout(60)

QUEUE = "published"
OUTAGE_S = 0.5


@pytest.fixture
def proxy(pubsub_emulator: Emulator) -> Iterator[TcpProxy]:
    host, _, port = pubsub_emulator.host.rpartition(":")
    with TcpProxy((host, int(port))) as proxy:
        yield proxy


def _proxied_broker(make_broker: BrokerFactory, proxy: TcpProxy, **options: Any) -> PubSubBroker:
    """A broker whose queue exists and whose channel is open, through ``proxy``."""
    broker = make_broker(emulator_host=f"127.0.0.1:{proxy.port}", **options)
    broker.declare_queue(QUEUE)
    broker.provision()
    broker.enqueue(_message("before the outage"))
    return broker


def _message(text: str) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=QUEUE, actor_name="noop", args=(text,), kwargs={}, options={}
    )


def test_a_publish_is_retried_through_a_short_outage(
    make_broker: BrokerFactory, proxy: TcpProxy
) -> None:
    broker = _proxied_broker(make_broker, proxy, publish_timeout=20)
    proxy.cut()
    restore = threading.Timer(OUTAGE_S, proxy.restore)
    restore.start()
    try:
        sent = broker.enqueue(_message("during the outage"))
    finally:
        restore.join()

    assert broker.take_publish_failure() is False
    consumer = broker.consume(QUEUE, prefetch=10, timeout=500)
    try:
        received: set[str] = set()
        deadline = time.monotonic() + 20
        while sent.message_id not in received and time.monotonic() < deadline:
            if (message := next(consumer)) is not None:
                received.add(message.message_id)
                consumer.ack(message)
    finally:
        consumer.close()
    assert sent.message_id in received


def test_an_unconfirmed_publish_fails_once_the_publish_timeout_passed(
    make_broker: BrokerFactory, proxy: TcpProxy
) -> None:
    timeout = 1.5
    broker = _proxied_broker(make_broker, proxy, publish_timeout=timeout)
    proxy.cut()

    started = time.monotonic()
    with pytest.raises(PublishFailed, match="was not confirmed"):
        broker.enqueue(_message("never confirmed"))
    elapsed = time.monotonic() - started

    assert elapsed < timeout + 2.0  # given up in time
    assert broker.take_publish_failure() is True
