"""A pipeline worker leases no more messages from a queue than it has threads."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from consensus_engine.workers.broker import Prefetch


def test_the_worker_prefetches_one_message_per_thread() -> None:
    broker = StubBroker(middleware=[Prefetch()])
    broker.declare_queue("jobs")
    worker = dramatiq.Worker(broker, worker_threads=3, worker_timeout=100)
    assert worker.queue_prefetch == 6  # Dramatiq's own choice: twice the threads
    worker.start()
    try:
        assert worker.queue_prefetch == 3
        assert worker.consumers["jobs"].prefetch == 3
    finally:
        worker.stop()
        broker.close()
