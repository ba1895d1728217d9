"""PubSubBroker against a Pub/Sub emulator, with real Dramatiq workers.

Each test declares its actors on its own broker (its own namespace), sends
messages, and waits with ``broker.join`` or a condition; no part of the broker
is mocked. Where a test needs to see inside the worker it uses Dramatiq's own
middleware hooks or wraps the consumer the broker hands out, never replacing
what the broker does.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.middleware import CurrentMessage, Middleware
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from brokers.pubsub import (
    DeadLetter,
    DelayTooLong,
    MessageTooLarge,
    PubSubBroker,
    PubSubMessageProxy,
    ResourceMissing,
    SubscriptionPolicy,
)

from .conftest import Backend, BrokerFactory, WorkerFactory, pull_handed_back, subscriber_client

pytestmark = pytest.mark.timeout(180)

QUEUE = "jobs"
JOIN_MS = 30_000


class Events:
    """A thread-safe log that tests can wait on."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._changed = threading.Condition()

    def add(self, item: Any) -> None:
        with self._changed:
            self._items.append(item)
            self._changed.notify_all()

    @property
    def items(self) -> list[Any]:
        with self._changed:
            return list(self._items)

    def wait_for(self, done: Callable[[list[Any]], bool], timeout: float) -> list[Any]:
        """Wait until ``done(items)``; fail the test with what was seen after ``timeout`` s."""
        with self._changed:
            if not self._changed.wait_for(lambda: done(self._items), timeout):
                pytest.fail(f"gave up after {timeout} s; events so far: {self._items!r}")
            return list(self._items)


def pull(
    subscriber: pubsub_v1.SubscriberClient,
    subscription_path: str,
    *,
    until: Callable[[list[Any]], bool],
    timeout: float = 20.0,
) -> list[Any]:
    """Pull (and ack) received messages until ``until(messages)`` holds."""
    received: list[Any] = []
    deadline = time.monotonic() + timeout
    while not until(received):
        if time.monotonic() > deadline:
            pytest.fail(f"pulled only {len(received)} message(s) from {subscription_path}")
        try:
            response = subscriber.pull(
                request={"subscription": subscription_path, "max_messages": 100}, timeout=2
            )
        except (gexc.DeadlineExceeded, gexc.RetryError):
            continue
        if response.received_messages:
            subscriber.acknowledge(
                request={
                    "subscription": subscription_path,
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )
        received += [m.message for m in response.received_messages]
    return received


def dead_letters(
    broker: PubSubBroker, subscriber: pubsub_v1.SubscriberClient, count: int
) -> list[Any]:
    """The first ``count`` messages on the queue's dead-letter subscription."""
    path = broker.provisioner.subscription_path(broker.queues[QUEUE].dead_letter_subscription)
    return pull(subscriber, path, until=lambda received: len(received) >= count)


class Recorder(Middleware):
    """Records when Dramatiq put a message on a consumer's in-memory delay queue."""

    def __init__(self) -> None:
        self.delayed = Events()

    def before_delay_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.delayed.add((message.message_id, time.time()))


# -- running actors -----------------------------------------------------------------------


def test_actors_process_every_message_once(broker: PubSubBroker, worker: dramatiq.Worker) -> None:
    seen: Counter[int] = Counter()
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def count(number: int) -> None:
        with lock:
            seen[number] += 1

    for number in range(20):
        count.send(number)
    broker.join(QUEUE, timeout=JOIN_MS)
    worker.join()

    assert seen == Counter(range(20))


def test_many_threads_enqueue_at_once(broker: PubSubBroker, worker: dramatiq.Worker) -> None:
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def record(tag: str) -> None:
        with lock:
            seen[tag] += 1

    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def produce(thread: int) -> None:
        start.wait()
        try:
            for index in range(50):
                record.send(f"{thread}-{index}")
        except BaseException as error:
            errors.append(error)
            raise

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    broker.join(QUEUE, timeout=60_000)
    worker.join()

    assert seen == Counter(f"{t}-{i}" for t in range(8) for i in range(50))


def test_retries_honour_the_backoff(broker: PubSubBroker, worker: dramatiq.Worker) -> None:
    attempts: list[float] = []

    @dramatiq.actor(
        broker=broker, queue_name=QUEUE, max_retries=5, min_backoff=500, max_backoff=1000
    )
    def flaky() -> None:
        attempts.append(time.time())
        if len(attempts) <= 2:
            raise RuntimeError(f"failure {len(attempts)}")

    flaky.send()
    broker.join(QUEUE, timeout=JOIN_MS)
    worker.join()

    assert len(attempts) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(0.49 <= gap < 6 for gap in gaps), gaps


def test_delayed_message_runs_after_its_delay(
    broker: PubSubBroker, worker: dramatiq.Worker
) -> None:
    ran: list[float] = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def later() -> None:
        ran.append(time.time())

    sent = time.time()
    later.send_with_options(delay=1000)
    broker.join(QUEUE, timeout=JOIN_MS)
    worker.join()

    assert len(ran) == 1
    assert ran[0] - sent >= 0.99


def test_delay_beyond_the_hold_window_is_parked_until_due(
    broker: PubSubBroker, worker: dramatiq.Worker
) -> None:
    """With hold_window=2 s, a 5 s delay must stay with Pub/Sub (parked by ack
    deadline) until at most 2 s before its eta: Dramatiq's delay queue, which is
    where a held message goes, must not see it earlier."""
    recorder = Recorder()
    broker.add_middleware(recorder)
    ran: list[float] = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def much_later() -> None:
        ran.append(time.time())

    sent = time.time()
    message = much_later.send_with_options(delay=5000)
    eta_s = message.options["eta"] / 1000
    broker.join(QUEUE, timeout=JOIN_MS)
    worker.join()

    held = [at for message_id, at in recorder.delayed.items if message_id == message.message_id]
    assert held, "the delayed message never reached Dramatiq's delay queue"
    assert min(held) >= eta_s - broker.hold_window_seconds - 0.01, (
        f"handed to Dramatiq {eta_s - min(held):.2f} s before its eta"
    )
    assert len(ran) == 1
    assert ran[0] - sent >= 5.0 - 0.01
    assert ran[0] - sent < 20


def test_delay_too_long_is_refused(broker: PubSubBroker) -> None:
    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def never() -> None:
        raise AssertionError("must not run")

    with pytest.raises(DelayTooLong, match="delay of"):
        never.send_with_options(delay=broker.max_delay_ms + 1)
    broker.join(QUEUE, timeout=100)  # nothing is pending
    # The longest delay the broker can park is accepted.
    accepted = never.send_with_options(delay=broker.max_delay_ms)
    assert accepted.queue_name == f"{QUEUE}.DQ"
    with pytest.raises(QueueJoinTimeout):
        broker.join(QUEUE, timeout=100)


# -- failures and dead letters ------------------------------------------------------------


def test_failed_message_is_dead_lettered_with_its_reason(
    broker: PubSubBroker, worker: dramatiq.Worker, subscriber: pubsub_v1.SubscriberClient
) -> None:
    token = uuid.uuid4().hex

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def explode() -> None:
        raise ValueError(f"boom {token}")

    sent = explode.send()
    broker.join(QUEUE, timeout=JOIN_MS)
    worker.join()

    [letter] = dead_letters(broker, subscriber, 1)
    reason = letter.attributes["dead_letter_reason"]
    assert "ValueError" in reason
    assert token in reason
    assert letter.attributes["dramatiq_message_id"] == sent.message_id
    assert dramatiq.Message.decode(letter.data).actor_name == "explode"


def test_dead_letters_are_read_back_and_leave_once_acked(
    broker: PubSubBroker, worker: dramatiq.Worker
) -> None:
    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def collapse(number: int) -> None:
        raise RuntimeError(f"collapse {number}")

    sent = collapse.send(7)
    broker.join(QUEUE, timeout=JOIN_MS)

    deadline = time.monotonic() + 30
    letters: list[DeadLetter] = []
    while not letters and time.monotonic() < deadline:  # the dead-letter publish may trail
        letters = broker.dead_letters(QUEUE)
    [letter] = letters
    assert letter.message is not None and letter.message.message_id == sent.message_id
    assert letter.message.args == (7,)
    assert "collapse 7" in letter.reason

    broker.ack_dead_letters(QUEUE, letters)
    assert broker.dead_letters(QUEUE) == []


def test_a_native_dead_letter_says_how_often_it_was_delivered() -> None:
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=QUEUE, actor_name="a", args=(), kwargs={}, options={}
    )
    received = pubsub_v1.types.ReceivedMessage(
        ack_id="ack-1",
        message=pubsub_v1.types.PubsubMessage(
            data=message.encode(),
            attributes={"CloudPubSubDeadLetterSourceDeliveryCount": "5"},
        ),
    )

    letter = DeadLetter.from_received(received)

    assert letter.message == message
    assert letter.reason == "not acked after 5 deliveries"
    assert DeadLetter.from_received(pubsub_v1.types.ReceivedMessage(ack_id="x")).message is None


def test_message_for_an_unknown_actor_is_dead_lettered(
    broker: PubSubBroker, worker: dramatiq.Worker, subscriber: pubsub_v1.SubscriberClient
) -> None:
    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def known() -> None:
        pass

    orphan: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=QUEUE, actor_name="nobody_declared_me", args=(), kwargs={}, options={}
    )
    broker.enqueue(orphan)
    broker.join(QUEUE, timeout=JOIN_MS)

    [letter] = dead_letters(broker, subscriber, 1)
    assert "ActorNotFound" in letter.attributes["dead_letter_reason"]
    assert letter.attributes["dramatiq_message_id"] == orphan.message_id


# -- limits -------------------------------------------------------------------------------


def test_oversized_message_is_refused_before_publishing(
    broker: PubSubBroker, subscriber: pubsub_v1.SubscriberClient
) -> None:
    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def take(payload: str) -> None:
        pass

    with pytest.raises(MessageTooLarge, match="at most"):
        take.send("x" * 10_000_000)
    broker.join(QUEUE, timeout=100)  # nothing is pending
    sentinel = take.send("small")

    path = broker.provisioner.subscription_path(broker.queues[QUEUE].subscription)
    received = pull(
        subscriber,
        path,
        until=lambda got: any(
            m.attributes["dramatiq_message_id"] == sentinel.message_id for m in got
        ),
    )
    # A late publish of the large one would show up here.
    with contextlib.suppress(gexc.DeadlineExceeded, gexc.RetryError):
        response = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=1)
        received += [m.message for m in response.received_messages]
    assert [m.attributes["dramatiq_message_id"] for m in received] == [sentinel.message_id]


def test_join_times_out(broker: PubSubBroker) -> None:
    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def unprocessed() -> None:
        pass

    broker.join(QUEUE, timeout=100)  # nothing pending yet
    unprocessed.send()
    started = time.monotonic()
    with pytest.raises(QueueJoinTimeout):
        broker.join(QUEUE, timeout=300)
    assert time.monotonic() - started >= 0.29
    with pytest.raises(QueueNotFound):
        broker.join("undeclared", timeout=100)


def test_flush_drops_pending_messages(broker: PubSubBroker, make_worker: WorkerFactory) -> None:
    ran = Events()

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def note(tag: str) -> None:
        ran.add(tag)

    for index in range(3):
        note.send(f"flushed-{index}")
    note.send_with_options(args=("flushed-delayed",), delay=1000)
    broker.flush(QUEUE)
    broker.join(QUEUE, timeout=100)  # flushing forgets them for join as well

    make_worker()
    note.send("after")
    note.send_with_options(args=("after-delayed",), delay=1000)
    broker.join(QUEUE, timeout=JOIN_MS)

    # Both sentinels were published after the flushed messages and the delayed
    # one was due later than the flushed delayed one.
    assert sorted(ran.items) == ["after", "after-delayed"]


# -- flow control and leases --------------------------------------------------------------


class _Outstanding:
    """Messages Dramatiq received from a consumer and has not settled yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def change(self, by: int) -> None:
        with self._lock:
            self.now += by
            self.peak = max(self.peak, self.now)


class _CountingConsumer(dramatiq.Consumer):
    """Passes everything through to the broker's consumer and counts what is
    handed out but not yet acked, nacked or requeued."""

    def __init__(self, inner: dramatiq.Consumer, outstanding: _Outstanding) -> None:
        self._inner = inner
        self._outstanding = outstanding

    def __next__(self) -> dramatiq.MessageProxy | None:
        message = next(self._inner)
        if message is not None:
            self._outstanding.change(+1)
        return message

    def ack(self, message: dramatiq.MessageProxy) -> None:
        self._outstanding.change(-1)
        self._inner.ack(message)

    def nack(self, message: dramatiq.MessageProxy) -> None:
        self._outstanding.change(-1)
        self._inner.nack(message)

    def requeue(self, messages: Iterable[dramatiq.MessageProxy]) -> None:
        messages = list(messages)
        self._outstanding.change(-len(messages))
        self._inner.requeue(messages)

    def close(self) -> None:
        self._inner.close()


class _CountingBroker(PubSubBroker):
    """A PubSubBroker whose main-queue consumers are wrapped in a counter."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.outstanding = _Outstanding()

    def consume(  # type: ignore[override]  # hands out a wrapper
        self, queue_name: str, prefetch: int = 1, timeout: int = 30000
    ) -> dramatiq.Consumer:
        inner = super().consume(queue_name, prefetch, timeout)
        if queue_name in self.delay_queues:
            return inner
        return _CountingConsumer(inner, self.outstanding)


def test_prefetch_is_never_exceeded(make_broker: BrokerFactory, make_worker: WorkerFactory) -> None:
    """One worker thread, so a prefetch of 2: counting what the consumer hands
    to Dramatiq and what comes back acked, never more than 2 are out."""
    broker = make_broker(broker_class=_CountingBroker)
    assert isinstance(broker, _CountingBroker)
    ran = Events()

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def slow(number: int) -> None:
        time.sleep(0.1)
        ran.add(number)

    for number in range(20):
        slow.send(number)
    worker = make_worker(broker, worker_threads=1)
    assert worker.queue_prefetch == 2
    broker.join(QUEUE, timeout=JOIN_MS)
    worker.join()

    assert sorted(ran.items) == list(range(20))
    assert broker.outstanding.peak <= 2, f"{broker.outstanding.peak} messages out at once"
    # The instrument works: the worker did fill its prefetch.
    assert broker.outstanding.peak == 2


def test_task_longer_than_the_ack_deadline_runs_once(
    make_broker: BrokerFactory, make_worker: WorkerFactory
) -> None:
    """Ack deadline 10 s, task 22 s: only lease extension keeps Pub/Sub from
    handing the message to another thread (the worker has four) after 10 s."""
    broker = make_broker(policy=SubscriptionPolicy(ack_deadline_seconds=10), lease_extension=10)
    started = Events()

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def long_task() -> None:
        started.add(time.monotonic())
        time.sleep(22)

    worker = make_worker(broker)
    long_task.send()
    broker.join(QUEUE, timeout=60_000)
    worker.join()

    assert len(started.items) == 1


def test_stopping_a_worker_gives_prefetched_messages_back_at_once(
    faithful_pubsub: Backend, make_broker: BrokerFactory, make_worker: WorkerFactory
) -> None:
    """A stopping worker finishes the tasks under way and hands back what it had
    prefetched: right after ``stop`` a plain Pull gets those messages, which
    their leases (at least 1 s left, usually several) would otherwise keep away,
    and a second worker then runs every message once. (On a server that honours
    nacks after a stream closed; see ``faithful_pubsub``.)

    There are exactly as many messages as the worker prefetches, so none can be
    on its way to the closing stream when the finished tasks' acks free room:
    such a message comes back only when its lease ends, whatever the broker does.
    """
    first = make_broker(emulator_host=faithful_pubsub.host)
    second = make_broker(emulator_host=faithful_pubsub.host)
    ran = Events()
    under_way = Events()

    def slow_on(who: str) -> Callable[[str], None]:
        def slow(tag: str) -> None:
            under_way.add(tag)
            time.sleep(1)
            ran.add((who, tag))

        return slow

    actor = dramatiq.actor(queue_name=QUEUE, broker=first)(slow_on("first"))
    dramatiq.actor(queue_name=QUEUE, broker=second)(slow_on("second"))
    tags = [f"m{index}" for index in range(6)]
    for tag in tags:
        actor.send(tag)

    stopping = make_worker(first, worker_threads=3)  # prefetch 6: 3 running, 3 queued
    assert stopping.queue_prefetch == len(tags)
    under_way.wait_for(lambda items: len(items) >= 3, timeout=20)
    stopping.stop()
    finished = [tag for who, tag in ran.items if who == "first"]
    assert sorted(finished) == sorted(under_way.items)
    assert len(finished) == 3

    path = first.provisioner.subscription_path(first.queues[QUEUE].subscription)
    handed_back = pull_handed_back(faithful_pubsub.host, path, expected=len(tags) - 3)
    assert sorted(handed_back) == sorted(set(tags) - set(finished))

    make_worker(second)
    items = ran.wait_for(lambda items: len(items) >= len(tags), timeout=30)
    assert Counter(tag for _, tag in items) == Counter(tags)
    assert {tag for who, tag in items if who == "second"} == set(handed_back)


def test_ack_after_the_stream_closed_still_counts(
    faithful_pubsub: Backend, make_broker: BrokerFactory
) -> None:
    """Dramatiq acks from worker threads, possibly after the consumer's stream
    ended (a restart, a shutdown): the ack must still reach Pub/Sub."""
    broker = make_broker(emulator_host=faithful_pubsub.host)
    broker.declare_queue(QUEUE)
    for number in range(2):
        broker.enqueue(
            dramatiq.Message(
                queue_name=QUEUE, actor_name="a", args=(number,), kwargs={}, options={}
            )
        )
    consumer = broker.consume(QUEUE, prefetch=2, timeout=500)
    acked, control = _take(consumer, 2)
    consumer.close()
    consumer.ack(acked)

    # Had the ack been lost, this nack would make the message deliverable at
    # once, like the control that the broker hands back. (Pub/Sub may refuse to
    # nack an acked message; that is fine.)
    subscriber = subscriber_client(faithful_pubsub.host)
    with contextlib.suppress(gexc.GoogleAPICallError):
        subscriber.modify_ack_deadline(
            request={
                "subscription": acked._stream.subscription_path,
                "ack_ids": [acked._received.ack_id],
                "ack_deadline_seconds": 0,
            }
        )
    subscriber.close()
    consumer.requeue([control])

    again = broker.consume(QUEUE, prefetch=10, timeout=500)
    try:
        redelivered = [m.message_id for m in _take(again, 1)]
        # Anything else deliverable would come with it or right after it.
        redelivered += [m.message_id for m in _drain(again, seconds=1.5)]
    finally:
        again.close()
    assert redelivered == [control.message_id]


def _take(consumer: dramatiq.Consumer, count: int, timeout: float = 20) -> list[Any]:
    taken: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(taken) < count:
        assert time.monotonic() < deadline, f"received {len(taken)} of {count} messages"
        message = next(consumer)
        if message is not None:
            taken.append(message)
    return taken


def _drain(consumer: dramatiq.Consumer, seconds: float) -> Iterator[Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = next(consumer)
        if message is not None:
            yield message


# -- publish failures ---------------------------------------------------------------------


def test_take_publish_failure_reports_a_failed_publish_once(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker(auto_create=False, publish_timeout=10)
    broker.declare_queue(QUEUE)
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=QUEUE, actor_name="a", args=(), kwargs={}, options={}
    )

    assert broker.take_publish_failure() is False
    with pytest.raises(ResourceMissing, match="does not exist"):
        broker.enqueue(message)
    assert broker.take_publish_failure() is True
    assert broker.take_publish_failure() is False
    broker.join(QUEUE, timeout=100)  # the failed message is not pending


def test_failed_retry_enqueue_redelivers_instead_of_losing_the_message(
    make_broker: BrokerFactory, make_worker: WorkerFactory
) -> None:
    """Retries' enqueue runs in a middleware hook, whose errors Dramatiq only
    logs before acking. Here the delay queue's topic is missing (and may not be
    created), so the first retry cannot be published: the message must come
    back from Pub/Sub rather than be acked and lost."""
    broker = make_broker(auto_create=False)
    broker.add_middleware(CurrentMessage())
    calls: list[int] = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=3, min_backoff=100)
    def fragile() -> None:
        message = CurrentMessage.get_current_message()
        assert message is not None
        calls.append(message.options.get("retries", 0))
        if len(calls) == 2:
            # A redelivery, not a retry: let retries be published from now on.
            broker.provisioner.ensure(broker.queues[f"{QUEUE}.DQ"], delay=True)
        if len(calls) <= 2:
            raise RuntimeError(f"failure {len(calls)}")

    broker.provisioner.ensure(broker.queues[QUEUE], delay=False)
    make_worker(broker)
    fragile.send()
    broker.join(QUEUE, timeout=JOIN_MS)

    assert calls == [0, 0, 1]


def test_publish_failure_the_actor_saw_does_not_hold_back_its_ack(
    make_broker: BrokerFactory, make_worker: WorkerFactory
) -> None:
    """An actor whose own send fails is told so (it gets the exception); if it
    then finishes normally, its message is acked like any other, not handed back
    to Pub/Sub over and over."""
    broker = make_broker(auto_create=False)
    calls: list[str] = []

    @dramatiq.actor(broker=broker, queue_name="elsewhere")
    def unreachable() -> None:
        raise AssertionError("its topic does not exist")

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def tolerant() -> None:
        try:
            unreachable.send()
        except ResourceMissing:
            calls.append("send failed")
        else:
            calls.append("sent")

    broker.provisioner.ensure(broker.queues[QUEUE], delay=False)
    broker.provisioner.ensure(broker.queues[f"{QUEUE}.DQ"], delay=True)
    make_worker(broker, queues={QUEUE})
    tolerant.send()
    broker.join(QUEUE, timeout=JOIN_MS)

    assert calls == ["send failed"]


def test_retry_that_cannot_be_delayed_is_redelivered_not_lost(
    make_broker: BrokerFactory, make_worker: WorkerFactory
) -> None:
    """Retention of 70 minutes lets the broker park delays of up to 10 minutes;
    a retry backoff of 30-60 minutes is refused (DelayTooLong) inside the Retries
    middleware, whose errors Dramatiq only logs before acking. The message must
    come back from Pub/Sub instead of being acked and lost."""
    broker = make_broker(policy=SubscriptionPolicy(retention=timedelta(minutes=70)))
    assert broker.max_delay_ms == 10 * 60 * 1000
    calls: list[float] = []

    @dramatiq.actor(
        broker=broker,
        queue_name=QUEUE,
        max_retries=3,
        min_backoff=3_600_000,
        max_backoff=3_600_000,
    )
    def fails_once() -> None:
        calls.append(time.time())
        if len(calls) == 1:
            raise RuntimeError("first attempt")

    make_worker(broker)
    fails_once.send()
    broker.join(QUEUE, timeout=JOIN_MS)

    assert len(calls) == 2


def test_proxy_keeps_its_delivery(broker: PubSubBroker) -> None:
    """The consumer hands out proxies that carry their Pub/Sub delivery."""
    broker.declare_queue(QUEUE)
    broker.enqueue(
        dramatiq.Message(queue_name=QUEUE, actor_name="a", args=(), kwargs={}, options={})
    )
    consumer = broker.consume(QUEUE, prefetch=1, timeout=500)
    try:
        [message] = _take(consumer, 1)
        assert isinstance(message, PubSubMessageProxy)
        assert message.options["pubsub_enqueue_id"]
        consumer.ack(message)
    finally:
        consumer.close()
    broker.join(QUEUE, timeout=1000)
