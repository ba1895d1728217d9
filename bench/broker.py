"""Throughput and latency of PubSubBroker next to the raw client, Redis and RabbitMQ.

Why: PubSubBroker waits for every publish to be confirmed and hands streaming-pull
deliveries to Dramatiq through a buffer. This measures what that costs against
the transport's own limit (google-cloud-pubsub alone, same emulator) and against
Dramatiq's stock brokers, with a real in-process Worker in every case. The
confirmed-enqueue row times one thread's sends, each waiting for its confirmation, to
PubSubBroker and to RabbitmqBroker with publisher confirms, in alternating rounds.

    .venv/bin/python -m bench.broker [--messages 2000] [--latency-samples 200]

It exits 0 whether the targets are met or not: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import queue
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import dramatiq
from dramatiq.common import dq_name, xq_name
from google.cloud import pubsub_v1

from bench import _harness
from bench._harness import Skipped, attempt, percentile, print_table
from brokers.pubsub import PubSubBroker
from brokers.pubsub.clients import Clients
from consensus_engine.devtools.emulator import pubsub_emulator
from consensus_engine.devtools.stack import attempt_cleanup, delete_pubsub_resources

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
TARGET_ENQUEUE_RATIO = 0.8  # PubSubBroker's confirmed enqueue rate / RabbitmqBroker's
ENQUEUE_ROW = "Broker enqueue, one thread, each publish confirmed"
ENQUEUE_ROUNDS = 20  # the brokers take turns, so a busy machine weighs on both alike
ENQUEUE_WARMUP = 100  # per broker: connections, channels and the emulator's JIT

ROW_TITLES = {
    "raw": f"raw client: batched publish, flow {RAW_DEFAULT_FLOW}",
    "raw-serial": f"raw client: publish-and-wait, flow {PREFETCH}",
    "pubsub": "PubSubBroker (emulator)",
    "redis": "RedisBroker",
    "rabbitmq": "RabbitmqBroker (confirms)",
}
F = TypeVar("F")


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


@dataclass(frozen=True)
class Sends:
    """One broker's rounds of confirmed sends from one thread: each round's seconds, and
    this process's CPU seconds over all of them."""

    per_round: int
    rounds_s: tuple[float, ...]
    cpu_s: float

    @property
    def rate(self) -> float:
        """Sends per second in the median round."""
        return self.per_round / statistics.median(self.rounds_s)

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s / (self.per_round * len(self.rounds_s)) * 1000

    def speed_against(self, other: Sends) -> float:
        """The median over rounds of ``other``'s time / this one's: the rounds alternate, so
        a busy spell on the machine weighs on one pair, which the median leaves out."""
        return statistics.median(
            theirs / mine for mine, theirs in zip(self.rounds_s, other.rounds_s, strict=True)
        )


class Countdown:
    """Counts distinct keys, so a redelivered message cannot end a run early."""

    def __init__(self, total: int) -> None:
        self.total, self.seen, self.done = total, set[Hashable](), threading.Event()

    def hit(self, key: Hashable) -> None:
        self.seen.add(key)  # one set.add is atomic (the GIL): no lock needed
        if len(self.seen) >= self.total:
            self.done.set()


@dataclass(frozen=True)
class Backend:
    """How to get, prepare and clean up one kind of Dramatiq broker."""

    description: str  # which server it talks to, for the report
    open: Callable[[str], dramatiq.Broker]  # a fresh broker, its names tagged
    # Creates server-side queues up front, so timing starts with them in place.
    prepare: Callable[[Any, str], object] = lambda broker, queue_name: None
    delete: Callable[[Any], object] = lambda broker: None  # what the run made besides messages


def pubsub_backend(host: str, description: str) -> Backend:
    return Backend(
        description,
        lambda tag: PubSubBroker(project=PROJECT, namespace=f"bench-{tag}-", emulator_host=host),
        prepare=lambda broker, queue_name: broker.provision(),
        delete=delete_pubsub_resources,
    )


def redis_backend(url: str) -> Backend | Skipped:
    """Redis, or why it cannot be used."""
    try:
        import redis
        from dramatiq.brokers.redis import RedisBroker
    except ImportError as error:
        return Skipped(f"redis package missing: {error}")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as error:
        return Skipped(f"{url}: {error}")

    def delete(broker: RedisBroker) -> None:
        """Heartbeats and ack sets outlive flush_all; drop every key of the run's namespace."""
        keys = list(broker.client.scan_iter(match=f"{broker.namespace}:*"))
        if keys:
            broker.client.delete(*keys)
        broker.client.close()

    return Backend(url, lambda tag: RedisBroker(url=url, namespace=f"bench-{tag}"), delete=delete)


def rabbitmq_backend(url: str) -> Backend | Skipped:
    """RabbitMQ with publisher confirms (like PubSubBroker, enqueue waits for the server), or
    why it cannot be used."""
    parts = urlsplit(url)
    shown = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    shown += " (confirm_delivery=True)"
    try:
        import pika  # type: ignore[import-untyped]
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
    except ImportError as error:
        return Skipped(f"pika package missing: {error}")
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = 2
    parameters.connection_attempts = 1
    try:
        pika.BlockingConnection(parameters).close()
    except pika.exceptions.AMQPError as error:
        return Skipped(f"{shown}: {error!r}")

    def delete(broker: RabbitmqBroker) -> None:
        for queue_name in broker.get_declared_queues():
            for name in (queue_name, dq_name(queue_name), xq_name(queue_name)):
                broker.channel.queue_delete(name)

    return Backend(
        shown,
        lambda tag: RabbitmqBroker(url=url, confirm_delivery=True),
        prepare=lambda broker, queue_name: broker.declare_queue(queue_name, ensure=True),
        delete=delete,
    )


@contextlib.contextmanager
def _opened(
    backend: Backend, kind: str, fn: Callable[[Any], None]
) -> Iterator[dramatiq.Actor[[Any], None]]:
    """A fresh broker with an actor bound to it only (no retries, so a failure shows as a
    shortfall), its queue in place; the broker is flushed, cleaned up and closed afterwards."""
    tag = uuid.uuid4().hex[:10]
    broker = backend.open(tag)
    try:
        queue_name = f"bench_{tag}_{kind}"
        actor = dramatiq.Actor(
            fn,
            broker=broker,
            actor_name=f"bench_{queue_name}",
            queue_name=queue_name,
            priority=0,
            options={"max_retries": 0},
        )
        backend.prepare(broker, queue_name)
        yield actor
    finally:
        attempt_cleanup("flush the queues", broker.flush_all)
        attempt_cleanup("delete what the run created", partial(backend.delete, broker))
        broker.close()


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
    countdown = Countdown(messages)
    with _opened(backend, "noop", countdown.hit) as actor:
        started = time.perf_counter()
        for index in range(messages):
            actor.send(index)
        enqueue_s = time.perf_counter() - started
        with _running_worker(actor.broker) as worker_started:
            countdown.done.wait(timeout)
            process_s = time.perf_counter() - worker_started
        return Rates(messages, enqueue_s, len(countdown.seen), process_s)


def measure_enqueue(backends: dict[str, Backend], messages: int) -> dict[str, Sends]:
    """``messages`` sends to each broker from this thread, each waiting for the server's
    confirmation, in rounds that alternate between the brokers."""
    per_round = max(1, messages // ENQUEUE_ROUNDS)
    rounds: dict[str, list[float]] = {label: [] for label in backends}
    cpu = dict.fromkeys(backends, 0.0)
    with contextlib.ExitStack() as stack:
        actors = {
            label: stack.enter_context(_opened(backend, "enqueue", lambda index: None))
            for label, backend in backends.items()
        }
        for actor in actors.values():
            for index in range(ENQUEUE_WARMUP):
                actor.send(index)
        for _ in range(ENQUEUE_ROUNDS):
            for label, actor in actors.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                for index in range(per_round):
                    actor.send(index)
                rounds[label].append(time.perf_counter() - started)
                cpu[label] += time.process_time() - cpu_started
    return {label: Sends(per_round, tuple(rounds[label]), cpu[label]) for label in backends}


def measure_latency(backend: Backend, samples: int, gap_s: float, timeout: float) -> Latency:
    """Send one message at a time to an idle Worker; the actor notes when it starts."""
    started: queue.Queue[tuple[float, float]] = queue.Queue()

    def record(sent_at: float) -> None:
        started.put((sent_at, (time.time() - sent_at) * 1000))

    recorded: list[float] = []
    lost = 0
    with _opened(backend, "latency", record) as actor, _running_worker(actor.broker):
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


def _raw_payload(index: int) -> tuple[bytes, dict[str, str]]:
    """Bytes and attributes like PubSubBroker's, so only the broker layer differs."""
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
    return message.encode(), attributes


def measure_raw(
    host: str, messages: int, *, one_at_a_time: bool, max_messages: int, timeout: float
) -> Rates:
    """Publish with the broker's client settings, then consume with a plain subscribe()
    (streaming pull, an acking callback) until every message arrived."""
    clients = Clients(emulator_host=host)
    tag = uuid.uuid4().hex[:10]
    topic = f"projects/{PROJECT}/topics/bench-raw-{tag}"
    subscription = f"projects/{PROJECT}/subscriptions/bench-raw-{tag}-sub"
    clients.publisher.create_topic(request={"name": topic})
    try:
        clients.subscriber.create_subscription(
            request={"name": subscription, "topic": topic, "ack_deadline_seconds": 60}
        )
        payloads = [_raw_payload(index) for index in range(messages)]
        started = time.perf_counter()
        futures = []
        for data, attributes in payloads:
            futures.append(clients.publisher.publish(topic, data, **attributes))
            if one_at_a_time:
                futures[-1].result(timeout=60)
        for future in futures:
            future.result(timeout=60)
        enqueue_s = time.perf_counter() - started
        countdown = Countdown(messages)

        def callback(message: Any) -> None:
            countdown.hit(message.attributes["dramatiq_message_id"])
            message.ack()

        started = time.perf_counter()
        flow = pubsub_v1.types.FlowControl(max_messages=max_messages)
        pulling = clients.subscriber.subscribe(subscription, callback, flow_control=flow)
        countdown.done.wait(timeout)
        process_s = time.perf_counter() - started
        pulling.cancel()
        with contextlib.suppress(Exception):
            pulling.result(timeout=10)
        return Rates(messages, enqueue_s, len(countdown.seen), process_s)
    finally:
        attempt_cleanup(
            "delete raw subscription",
            lambda: clients.subscriber.delete_subscription(request={"subscription": subscription}),
        )
        attempt_cleanup(
            "delete raw topic", lambda: clients.publisher.delete_topic(request={"topic": topic})
        )
        clients.close()


@dataclass
class Report:
    """Every figure of one run: throughput rows, then latency rows, by label, then the
    confirmed enqueue of PubSubBroker and RabbitmqBroker."""

    throughput: dict[str, Rates | Skipped]
    latency: dict[str, Latency | Skipped]
    enqueue: dict[str, Sends] | Skipped

    @staticmethod
    def rows(figures: dict[str, F | Skipped]) -> list[tuple[str, F | Skipped]]:
        return [(ROW_TITLES.get(label, label), figure) for label, figure in figures.items()]


def print_throughput(report: Report, messages: int) -> None:
    raw = report.throughput.get("raw")
    raw_rate = raw.process_rate if isinstance(raw, Rates) else math.nan

    def cells(row: Rates) -> str:
        note = "" if row.processed == messages else f"  (only {row.processed} ran)"
        return (
            f"{row.enqueue_rate:10,.0f}{row.process_rate:10,.0f}{row.end_to_end_rate:12,.0f}"
            f"{row.process_rate / raw_rate:13.2f}{note}"
        )

    print_table(
        f"\nThroughput, {messages} no-op messages (msg/s; process = Worker start -> all run)",
        f"{'enqueue':>10}{'process':>10}{'end-to-end':>12}{'process/raw':>13}",
        report.rows(report.throughput),
        cells,
    )


def print_latency(report: Report, samples: int) -> None:
    print_table(
        f"\nEnqueue -> actor start latency, {samples} single messages to an idle Worker (ms)",
        f"{'p50':>8}{'p99':>8}{'max':>8}{'lost':>6}",
        report.rows(report.latency),
        lambda row: (
            "".join(f"{row.percentile(f):8.1f}" for f in (0.5, 0.99, 1.0)) + f"{row.lost:6d}"
        ),
    )


def print_enqueue(report: Report, messages: int) -> None:
    """PubSubBroker's confirmed enqueue rate against RabbitmqBroker's with publisher
    confirms, and what each send costs this process in CPU."""

    def cells(figures: dict[str, Sends]) -> str:
        broker, peer = figures["pubsub"], figures["rabbitmq"]
        ratio = broker.speed_against(peer)
        verdict = "PASS" if ratio >= TARGET_ENQUEUE_RATIO else "MISS"
        return (
            f"{broker.rate:9,.0f}{peer.rate:9,.0f}{ratio:7.2f}x"
            f"{broker.cpu_ms:8.2f}{peer.cpu_ms:8.2f}  [{verdict}] >= {TARGET_ENQUEUE_RATIO}x"
        )

    print_table(
        f"\nConfirmed enqueue, {messages} sends each in {ENQUEUE_ROUNDS} alternating rounds "
        "(msg/s of the median round; ratio: median of the rounds' ratios; client CPU ms per send)",
        f"{'PubSub':>9}{'Rabbit':>9}{'ratio':>8}{'CPU P':>8}{'CPU R':>8}  target",
        [(ENQUEUE_ROW, report.enqueue)],
        cells,
        width=len(ENQUEUE_ROW) + 2,
    )


def print_targets(report: Report) -> None:
    """Each target's PASS/MISS (n/a when its row did not run), then PubSubBroker as a
    multiple of each stock broker."""
    broker, raw = report.throughput.get("pubsub"), report.throughput.get("raw")
    ratio = p50 = math.nan
    if isinstance(broker, Rates) and isinstance(raw, Rates):
        ratio = broker.process_rate / raw.process_rate
    if isinstance(latency := report.latency.get("pubsub"), Latency):
        p50 = latency.percentile(0.5)
    print("\nTargets")
    for value, met, text in (
        (ratio, ratio >= TARGET_RAW_RATIO, f"process rate >= {TARGET_RAW_RATIO} x raw client (x)"),
        (p50, p50 < TARGET_P50_MS, f"p50 enqueue->start < {TARGET_P50_MS:.0f} ms (ms)"),
    ):
        if math.isnan(value):
            print(f"  [n/a ] PubSubBroker {text}: no figure")
        else:
            print(f"  [{'PASS' if met else 'MISS'}] PubSubBroker {text}: {value:.2f}")
    for label in ("redis", "rabbitmq"):
        peer = report.throughput.get(label)
        if isinstance(broker, Rates) and isinstance(peer, Rates):
            process = broker.process_rate / peer.process_rate
            enqueue = broker.enqueue_rate / peer.enqueue_rate
            print(
                f"  PubSubBroker vs {ROW_TITLES[label]}: "
                f"process {process:.2f} x, enqueue {enqueue:.2f} x"
            )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _harness.parser("broker", __doc__)
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


def _backends(args: argparse.Namespace, host: str | None, description: str) -> dict[str, Any]:
    """Every broker row's backend, or why it is skipped; printed so the report says what it
    used."""
    print("Servers:")
    backends = {
        "pubsub": pubsub_backend(host, description) if host else Skipped(description),
        "redis": redis_backend(args.redis_url),
        "rabbitmq": rabbitmq_backend(args.rabbitmq_url),
    }
    for label, chosen in backends.items():
        used = chosen.reason if isinstance(chosen, Skipped) else chosen.description
        print(f"  {ROW_TITLES[label]:42}{used}")
    sys.stdout.flush()
    return backends


def run(args: argparse.Namespace) -> Report:
    """Every row in a fixed order: raw client, broker throughput, latencies, then the
    confirmed enqueue."""
    with pubsub_emulator(os.environ.get("PUBSUB_EMULATOR_HOST")) as emulator:
        host = emulator.host
        backends = _backends(args, host, emulator.description)

        def raw(messages: int, *, serial: bool) -> Rates | Skipped:
            """The transport alone: batched (its limit) or publish-and-wait with the Worker's
            window."""
            if host is None:
                return Skipped(emulator.description)
            flow = PREFETCH if serial else RAW_DEFAULT_FLOW
            measure = partial(measure_raw, host, messages, one_at_a_time=serial, max_messages=flow)
            return attempt(partial(measure, timeout=args.timeout))

        def each(measure: Callable[[Backend], F]) -> dict[str, F | Skipped]:
            """``measure`` on every broker, or why its row is skipped."""
            return {
                label: chosen if isinstance(chosen, Skipped) else attempt(partial(measure, chosen))
                for label, chosen in backends.items()
            }

        if host is not None:
            raw(min(WARMUP_MESSAGES, args.messages), serial=False)  # JIT warm-up, not reported
        throughput = {"raw": raw(args.messages, serial=False)}
        throughput["raw-serial"] = raw(args.messages, serial=True)
        rates = partial(measure_throughput, messages=args.messages, timeout=args.timeout)
        latency = partial(measure_latency, samples=args.latency_samples, gap_s=args.latency_gap)
        return Report(
            throughput | each(rates),
            each(partial(latency, timeout=10.0)),
            confirmed_enqueue(backends, args.messages),
        )


def confirmed_enqueue(backends: dict[str, Any], messages: int) -> dict[str, Sends] | Skipped:
    """PubSubBroker and RabbitmqBroker's confirmed enqueue, or why it cannot be measured."""
    pubsub, rabbitmq = backends["pubsub"], backends["rabbitmq"]
    for chosen in (pubsub, rabbitmq):
        if isinstance(chosen, Skipped):
            return chosen
    confirmed = {"pubsub": pubsub, "rabbitmq": rabbitmq}
    return attempt(partial(measure_enqueue, confirmed, messages))


def report(args: argparse.Namespace, report: Report) -> None:
    print_throughput(report, args.messages)
    print_latency(report, args.latency_samples)
    print_enqueue(report, args.messages)
    print_targets(report)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # a refused probe logs five tracebacks
    details = (
        f"; Worker {WORKER_THREADS} threads, worker_timeout {WORKER_TIMEOUT_MS} ms, "
        f"prefetch {PREFETCH}"
    )
    return _harness.main(
        "broker",
        details,
        partial(run, args),
        partial(report, args),
        stopping="the brokers and the emulator",
        footer="targets are informative, exit status is 0",
    )


if __name__ == "__main__":
    sys.exit(main())
