"""A tiny Dramatiq app for the worker processes of ``test_processes.py``.

Run as ``python -m dramatiq worker_app`` with this directory on PYTHONPATH.
The environment says where to report and which server and namespace to use:

- ``PUBSUB_EMULATOR_HOST``: the Pub/Sub server;
- ``CE_TEST_NAMESPACE``: the test's namespace;
- ``CE_TEST_EVENTS``: a file that gets one line per event,
  ``<event> <tag> <pid> <unix time>``;
- ``CE_TEST_LEASE_S``: the broker's lease extension and ack deadline (default 10).
"""

from __future__ import annotations

import os
import time

import dramatiq

from brokers.pubsub import PubSubBroker, SubscriptionPolicy

QUEUE = "jobs"
LEASE_S = int(os.environ.get("CE_TEST_LEASE_S", "10"))

broker = PubSubBroker(
    project="test-project",
    namespace=os.environ["CE_TEST_NAMESPACE"],
    emulator_host=os.environ["PUBSUB_EMULATOR_HOST"],
    hold_window=2,
    lease_extension=LEASE_S,
    policy=SubscriptionPolicy(ack_deadline_seconds=LEASE_S),
)
dramatiq.set_broker(broker)


def report(event: str, tag: str) -> None:
    """Append one line in a single write, so lines from several processes never mix."""
    line = f"{event} {tag} {os.getpid()} {time.time():.3f}\n".encode()
    descriptor = os.open(os.environ["CE_TEST_EVENTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def work(tag: str, seconds: float) -> None:
    report("start", tag)
    time.sleep(seconds)
    report("done", tag)
