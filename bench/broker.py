"""Throughput and latency of PubSubBroker next to the raw client, Redis and RabbitMQ.

Why: PubSubBroker waits for every publish to be confirmed and hands streaming-pull
deliveries to Dramatiq through a buffer. This measures what that costs against
the transport's own limit (google-cloud-pubsub alone, same emulator) and against
Dramatiq's stock brokers, with a real in-process Worker in every case.

    .venv/bin/python -m bench.broker [--messages 2000] [--latency-samples 200]

It exits 0 whether the targets are met or not: it is a benchmark, not a test.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import logging
import math
import os
import queue
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import dramatiq
from google.cloud import pubsub_v1

from bench._stack import delete_pubsub_resources
from brokers.pubsub import PubSubBroker
from brokers.pubsub.clients import Clients
from consensus_engine.devtools.emulator import pubsub_emulator
from consensus_engine.devtools.results import Skipped, attempt, attempt_cleanup, percentile

if TYPE_CHECKING:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker

WORKER_THREADS = 8
WORKER_TIMEOUT_MS = 100
# What Dramatiq's Worker asks each queue consumer for (env dramatiq_queue_prefetch overrides).
PREFETCH = dramatiq.worker.QUEUE_PREFETCH or WORKER_THREADS * 2
PROJECT = "bench-project"
RAW_DEFAULT_FLOW = 1000  # google-cloud-pubsub's default FlowControl.max_messages
WARMUP_MESSAGES = 500  # the emulator is a JVM: the first messages pay for JIT compilation
LATENCY_WARMUP = 5  # first deliveries pay for stream setup; not recorded
TARGET_RAW_RATIO = 0.5
TARGET_P50_MS = 50.0

ROW_TITLES = {
    "raw": f"raw client: batched publish, flow {RAW_DEFAULT_FLOW}",
    "raw-serial": f"raw client: publish-and-wait, flow {PREFETCH}",
    "pubsub": "PubSubBroker (emulator)",
    "redis": "RedisBroker",
    "rabbitmq": "RabbitmqBroker (confirms)",
}

log = logging.getLogger("bench.broker")


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    """One throughput run; ``processed`` may fall short of ``messages`` on timeout."""

    messages: int
    enqueue_s: float
    processed: int
    process_s: float

    @property
    def enqueue_rate(self) -> float:
        return self.messages / self.enqueue_s

    @property
    def process_rate(self) -> float:
        return self.processed / self.process_s

    @property
    def end_to_end_rate(self) -> float:
        return self.processed / (self.enqueue_s + self.process_s)


@dataclass(frozen=True)
class Latency:
    """Enqueue->start latencies in milliseconds and how many never started in time."""

    samples_ms: tuple[float, ...]
    lost: int

    def percentile(self, fraction: float) -> float:
        return percentile(self.samples_ms, fraction)


Outcome = Rates | Skipped
LatencyOutcome = Latency | Skipped


class Countdown:
    """Counts distinct keys, so a redelivered message cannot end a run early."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._seen: set[Hashable] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()

    def hit(self, key: Hashable) -> None:
        with self._lock:
            self._seen.add(key)
            if len(self._seen) >= self._total:
                self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._seen)


# -- brokers ---------------------------------------------------------------------------------


def _tag() -> str:
    return uuid.uuid4().hex[:10]


class Backend(abc.ABC):
    """How to get, prepare and clean up one kind of Dramatiq broker."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Which server this backend talks to, for the report."""

    def unavailable(self) -> str | None:
        """Why the server cannot be used, or None when it answers."""
        return None

    @abc.abstractmethod
    def open(self, tag: str) -> dramatiq.Broker: ...

    @abc.abstractmethod
    def prepare(self, broker: dramatiq.Broker, queue_name: str) -> None:
        """Create server-side queues up front, so timing starts with them in place."""

    @abc.abstractmethod
    def dispose(self, broker: dramatiq.Broker) -> None:
        """Flush and delete what the run created, then close."""


class PubSubBackend(Backend):
    def __init__(self, host: str, description: str) -> None:
        self.host = host
        self.description = description

    def describe(self) -> str:
        return self.description

    def open(self, tag: str) -> dramatiq.Broker:
        return PubSubBroker(project=PROJECT, namespace=f"bench-{tag}-", emulator_host=self.host)

    def prepare(self, broker: dramatiq.Broker, queue_name: str) -> None:
        assert isinstance(broker, PubSubBroker)
        broker.provision()

    def dispose(self, broker: dramatiq.Broker) -> None:
        assert isinstance(broker, PubSubBroker)
        attempt_cleanup("flush Pub/Sub queues", broker.flush_all)
        attempt_cleanup("delete Pub/Sub resources", partial(delete_pubsub_resources, broker))
        broker.close()


class RedisBackend(Backend):
    def __init__(self, url: str) -> None:
        self.url = url

    def describe(self) -> str:
        return self.url

    def unavailable(self) -> str | None:
        try:
            import redis
        except ImportError as error:
            return f"redis package missing: {error}"
        try:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
            client.ping()
            client.close()
        except redis.RedisError as error:
            return f"{self.url}: {error}"
        return None

    def open(self, tag: str) -> dramatiq.Broker:
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=self.url, namespace=f"bench-{tag}")

    def prepare(self, broker: dramatiq.Broker, queue_name: str) -> None:
        """Redis lists need no declaring."""

    def dispose(self, broker: dramatiq.Broker) -> None:
        from dramatiq.brokers.redis import RedisBroker

        assert isinstance(broker, RedisBroker)
        attempt_cleanup("flush Redis queues", broker.flush_all)
        attempt_cleanup("delete Redis keys", lambda: _delete_redis_keys(broker))
        broker.close()


def _delete_redis_keys(broker: RedisBroker) -> None:
    """Heartbeats and ack sets outlive flush_all; drop every key of the run's namespace."""
    keys = list(broker.client.scan_iter(match=f"{broker.namespace}:*"))
    if keys:
        broker.client.delete(*keys)
    broker.client.close()


class RabbitmqBackend(Backend):
    """RabbitMQ with publisher confirms: like PubSubBroker, enqueue waits for the server."""

    def __init__(self, url: str) -> None:
        self.url = url

    def describe(self) -> str:
        parts = urlsplit(self.url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=netloc)) + " (confirm_delivery=True)"

    def unavailable(self) -> str | None:
        try:
            import pika  # type: ignore[import-untyped]
        except ImportError as error:
            return f"pika package missing: {error}"
        parameters = pika.URLParameters(self.url)
        parameters.socket_timeout = 2
        parameters.connection_attempts = 1
        try:
            pika.BlockingConnection(parameters).close()
        except pika.exceptions.AMQPError as error:
            return f"{self.describe()}: {error!r}"
        return None

    def open(self, tag: str) -> dramatiq.Broker:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=self.url, confirm_delivery=True)

    def prepare(self, broker: dramatiq.Broker, queue_name: str) -> None:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        assert isinstance(broker, RabbitmqBroker)
        broker.declare_queue(queue_name, ensure=True)

    def dispose(self, broker: dramatiq.Broker) -> None:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        assert isinstance(broker, RabbitmqBroker)
        attempt_cleanup("flush RabbitMQ queues", broker.flush_all)
        attempt_cleanup("delete RabbitMQ queues", lambda: _delete_rabbitmq_queues(broker))
        broker.close()


def _delete_rabbitmq_queues(broker: RabbitmqBroker) -> None:
    from dramatiq.common import dq_name, xq_name

    for queue_name in broker.get_declared_queues():
        for name in (queue_name, dq_name(queue_name), xq_name(queue_name)):
            broker.channel.queue_delete(name)


# -- measuring brokers -----------------------------------------------------------------------


def _actor(
    broker: dramatiq.Broker, queue_name: str, fn: Callable[[Any], None]
) -> dramatiq.Actor[[Any], None]:
    """An actor bound to this broker only; no retries, so a failure shows as a shortfall."""
    return dramatiq.Actor(
        fn,
        broker=broker,
        actor_name=f"bench_{queue_name}",
        queue_name=queue_name,
        priority=0,
        options={"max_retries": 0},
    )


@contextlib.contextmanager
def _running_worker(broker: dramatiq.Broker) -> Iterator[float]:
    """Boot and start a Worker; yield the moment it started (perf_counter)."""
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(
        broker, worker_threads=WORKER_THREADS, worker_timeout=WORKER_TIMEOUT_MS
    )
    started = time.perf_counter()
    worker.start()
    try:
        yield started
    finally:
        worker.stop(timeout=10_000)


def measure_throughput(backend: Backend, messages: int, timeout: float) -> Rates:
    """Enqueue ``messages`` no-ops, then time a fresh Worker until all have run."""
    tag = _tag()
    broker = backend.open(tag)
    try:
        countdown = Countdown(messages)
        actor = _actor(broker, f"bench_{tag}_noop", countdown.hit)
        backend.prepare(broker, actor.queue_name)
        started = time.perf_counter()
        for index in range(messages):
            actor.send(index)
        enqueue_s = time.perf_counter() - started
        with _running_worker(broker) as worker_started:
            countdown.wait(timeout)
            process_s = time.perf_counter() - worker_started
        return Rates(messages, enqueue_s, countdown.count, process_s)
    finally:
        backend.dispose(broker)


def measure_latency(backend: Backend, samples: int, gap_s: float, timeout: float) -> Latency:
    """Send one message at a time to an idle Worker; the actor notes when it starts."""
    tag = _tag()
    broker = backend.open(tag)
    started: queue.Queue[tuple[float, float]] = queue.Queue()

    def record(sent_at: float) -> None:
        started.put((sent_at, (time.time() - sent_at) * 1000))

    try:
        actor = _actor(broker, f"bench_{tag}_latency", record)
        backend.prepare(broker, actor.queue_name)
        recorded: list[float] = []
        lost = 0
        with _running_worker(broker):
            for index in range(samples + LATENCY_WARMUP):
                time.sleep(gap_s * random.uniform(0.5, 1.5))  # don't phase-lock with polls
                sent_at = time.time()
                actor.send(sent_at)
                latency = _await_start(started, sent_at, timeout)
                if latency is None:
                    lost += 1
                elif index >= LATENCY_WARMUP:
                    recorded.append(latency)
        return Latency(tuple(recorded), lost)
    finally:
        backend.dispose(broker)


def _await_start(
    started: queue.Queue[tuple[float, float]], sent_at: float, timeout: float
) -> float | None:
    """The latency of the message sent at ``sent_at``; late arrivals of lost ones are skipped."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            stamp, latency = started.get(timeout=remaining)
        except queue.Empty:
            return None
        if stamp == sent_at:
            return latency
    return None


# -- the raw client --------------------------------------------------------------------------


def _raw_payloads(messages: int) -> list[tuple[bytes, dict[str, str]]]:
    """Bytes and attributes like PubSubBroker's, so only the broker layer differs."""
    payloads = []
    for index in range(messages):
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name="raw",
            actor_name="bench_raw",
            args=(index,),
            kwargs={},
            options={"pubsub_enqueue_id": uuid.uuid4().hex},
        )
        attributes = {
            "dramatiq_message_id": message.message_id,
            "dramatiq_actor": message.actor_name,
            "dramatiq_queue": message.queue_name,
        }
        payloads.append((message.encode(), attributes))
    return payloads


def _raw_publish(
    publisher: pubsub_v1.PublisherClient,
    topic: str,
    payloads: list[tuple[bytes, dict[str, str]]],
    *,
    one_at_a_time: bool,
) -> None:
    futures = []
    for data, attributes in payloads:
        future = publisher.publish(topic, data, **attributes)
        if one_at_a_time:
            future.result(timeout=60)
        else:
            futures.append(future)
    for future in futures:
        future.result(timeout=60)


def _raw_consume(
    subscriber: pubsub_v1.SubscriberClient,
    subscription: str,
    messages: int,
    *,
    max_messages: int,
    timeout: float,
) -> tuple[int, float]:
    """Streaming pull with an acking callback until every message arrived."""
    countdown = Countdown(messages)

    def callback(message: Any) -> None:
        countdown.hit(message.attributes["dramatiq_message_id"])
        message.ack()

    started = time.perf_counter()
    future = subscriber.subscribe(
        subscription, callback, flow_control=pubsub_v1.types.FlowControl(max_messages=max_messages)
    )
    countdown.wait(timeout)
    elapsed = time.perf_counter() - started
    future.cancel()
    with contextlib.suppress(Exception):
        future.result(timeout=10)
    return countdown.count, elapsed


def measure_raw(
    host: str, messages: int, *, one_at_a_time: bool, max_messages: int, timeout: float
) -> Rates:
    """Publish with the broker's client settings, then consume with a plain subscribe()."""
    clients = Clients(emulator_host=host)
    tag = _tag()
    topic = f"projects/{PROJECT}/topics/bench-raw-{tag}"
    subscription = f"projects/{PROJECT}/subscriptions/bench-raw-{tag}-sub"
    clients.publisher.create_topic(request={"name": topic})
    try:
        clients.subscriber.create_subscription(
            request={"name": subscription, "topic": topic, "ack_deadline_seconds": 60}
        )
        payloads = _raw_payloads(messages)
        started = time.perf_counter()
        _raw_publish(clients.publisher, topic, payloads, one_at_a_time=one_at_a_time)
        enqueue_s = time.perf_counter() - started
        processed, process_s = _raw_consume(
            clients.subscriber, subscription, messages, max_messages=max_messages, timeout=timeout
        )
        return Rates(messages, enqueue_s, processed, process_s)
    finally:
        attempt_cleanup(
            "delete raw subscription",
            lambda: clients.subscriber.delete_subscription(request={"subscription": subscription}),
        )
        attempt_cleanup(
            "delete raw topic", lambda: clients.publisher.delete_topic(request={"topic": topic})
        )
        clients.close()


# -- running and reporting -------------------------------------------------------------------


@dataclass
class Report:
    """Every figure of one run, filled in as rows complete."""

    throughput: dict[str, Outcome]
    latency: dict[str, LatencyOutcome]


def _fmt_rate(value: float) -> str:
    return f"{value:10,.0f}"


def print_throughput(report: Report, messages: int) -> None:
    raw = report.throughput.get("raw")
    raw_rate = raw.process_rate if isinstance(raw, Rates) else math.nan
    print(f"\nThroughput, {messages} no-op messages (msg/s; process = Worker start -> all run)")
    print(f"{'':44}{'enqueue':>10}{'process':>10}{'end-to-end':>12}{'process/raw':>13}")
    for label, outcome in report.throughput.items():
        title = ROW_TITLES.get(label, label)
        if isinstance(outcome, Skipped):
            print(f"  {title:42}{outcome.kind} ({outcome.reason})")
            continue
        note = "" if outcome.processed == messages else f"  (only {outcome.processed} ran)"
        ratio = outcome.process_rate / raw_rate
        print(
            f"  {title:42}{_fmt_rate(outcome.enqueue_rate)}{_fmt_rate(outcome.process_rate)}"
            f"{_fmt_rate(outcome.end_to_end_rate):>12}{ratio:13.2f}{note}"
        )


def print_latency(report: Report, samples: int) -> None:
    print(f"\nEnqueue -> actor start latency, {samples} single messages to an idle Worker (ms)")
    print(f"{'':44}{'p50':>8}{'p99':>8}{'max':>8}{'lost':>6}")
    for label, outcome in report.latency.items():
        title = ROW_TITLES.get(label, label)
        if isinstance(outcome, Skipped):
            print(f"  {title:42}{outcome.kind} ({outcome.reason})")
            continue
        print(
            f"  {title:42}{outcome.percentile(0.5):8.1f}{outcome.percentile(0.99):8.1f}"
            f"{outcome.percentile(1.0):8.1f}{outcome.lost:6d}"
        )


def _target(holds: Callable[[float], bool], value: float, text: str) -> None:
    """One target line: PASS/MISS, or n/a when its row did not run."""
    if math.isnan(value):
        print(f"  [n/a ] {text}: no figure")
    else:
        print(f"  [{'PASS' if holds(value) else 'MISS'}] {text}: {value:.2f}")


def print_targets(report: Report) -> None:
    broker, raw = report.throughput.get("pubsub"), report.throughput.get("raw")
    print("\nTargets")
    ratio = math.nan
    if isinstance(broker, Rates) and isinstance(raw, Rates):
        ratio = broker.process_rate / raw.process_rate
    _target(
        lambda value: value >= TARGET_RAW_RATIO,
        ratio,
        f"PubSubBroker process rate >= {TARGET_RAW_RATIO} x raw client (x)",
    )
    latency = report.latency.get("pubsub")
    p50 = latency.percentile(0.5) if isinstance(latency, Latency) else math.nan
    _target(
        lambda value: value < TARGET_P50_MS,
        p50,
        f"PubSubBroker p50 enqueue->start < {TARGET_P50_MS:.0f} ms (ms)",
    )
    _print_peers(report)


def _print_peers(report: Report) -> None:
    """PubSubBroker as a multiple of each stock broker, process and enqueue rates."""
    broker = report.throughput.get("pubsub")
    if not isinstance(broker, Rates):
        return
    for label in ("redis", "rabbitmq"):
        peer = report.throughput.get(label)
        if isinstance(peer, Rates):
            process = broker.process_rate / peer.process_rate
            enqueue = broker.enqueue_rate / peer.enqueue_rate
            print(
                f"  PubSubBroker vs {ROW_TITLES[label]}: "
                f"process {process:.2f} x, enqueue {enqueue:.2f} x"
            )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.broker", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--messages", type=int, default=2000, help="messages per throughput row")
    add("--latency-samples", type=int, default=200, help="messages per latency row")
    add("--latency-gap", type=float, default=0.05, help="mean idle seconds before each sample")
    add("--timeout", type=float, default=60.0, help="seconds a throughput row may take to drain")
    add("--redis-url", default="redis://127.0.0.1:6379/0")
    add("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.latency_samples < 1:
        parser.error("--messages and --latency-samples must be positive")
    return args


def _backends(
    args: argparse.Namespace, host: str | None, description: str
) -> dict[str, Backend | Skipped]:
    """Every broker row, or why it is skipped; printed so the report says what it used."""
    backends: dict[str, Backend | Skipped] = {}
    print("Servers:")
    backends["pubsub"] = PubSubBackend(host, description) if host else Skipped(description)
    for label, backend in (
        ("redis", RedisBackend(args.redis_url)),
        ("rabbitmq", RabbitmqBackend(args.rabbitmq_url)),
    ):
        reason = backend.unavailable()
        backends[label] = Skipped(reason) if reason else backend
    for label, chosen in backends.items():
        used = chosen.reason if isinstance(chosen, Skipped) else chosen.describe()
        print(f"  {ROW_TITLES[label]:42}{used}")
    sys.stdout.flush()
    return backends


def _raw_rows(args: argparse.Namespace, host: str | None, why_not: str) -> dict[str, Outcome]:
    """The transport alone: batched (its limit) and publish-and-wait with the Worker's window."""
    if host is None:
        return {"raw": Skipped(why_not), "raw-serial": Skipped(why_not)}

    def raw(messages: int, *, serial: bool) -> Outcome:
        flow = PREFETCH if serial else RAW_DEFAULT_FLOW
        return attempt(
            partial(
                measure_raw,
                host,
                messages,
                one_at_a_time=serial,
                max_messages=flow,
                timeout=args.timeout,
            )
        )

    raw(min(WARMUP_MESSAGES, args.messages), serial=False)  # JIT warm-up, not reported
    return {"raw": raw(args.messages, serial=False), "raw-serial": raw(args.messages, serial=True)}


def run(args: argparse.Namespace, host: str | None, description: str) -> Report:
    """Every row in a fixed order: raw client, broker throughput, then latencies."""
    backends = _backends(args, host, description)
    report = Report(throughput=_raw_rows(args, host, description), latency={})
    for label, backend in backends.items():
        report.throughput[label] = (
            backend
            if isinstance(backend, Skipped)
            else attempt(partial(measure_throughput, backend, args.messages, args.timeout))
        )
    for label, backend in backends.items():
        report.latency[label] = (
            backend
            if isinstance(backend, Skipped)
            else attempt(
                partial(measure_latency, backend, args.latency_samples, args.latency_gap, 10.0)
            )
        )
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # a refused probe logs five tracebacks
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"bench.broker: {os.cpu_count()} CPUs, load average {load}; Worker {WORKER_THREADS} "
        f"threads, worker_timeout {WORKER_TIMEOUT_MS} ms, prefetch {PREFETCH}"
    )
    started = time.monotonic()
    with pubsub_emulator(os.environ.get("PUBSUB_EMULATOR_HOST")) as emulator:
        report = run(args, emulator.host, emulator.description)
    print_throughput(report, args.messages)
    print_latency(report, args.latency_samples)
    print_targets(report)
    print(
        f"\n(total {time.monotonic() - started:.0f} s; targets are informative, exit status is 0)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
