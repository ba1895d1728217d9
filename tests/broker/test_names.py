"""Queue names to Pub/Sub resource ids: pure functions, no server needed."""

from __future__ import annotations

import dramatiq
import pytest
from dramatiq.common import dq_name
from hypothesis import given
from hypothesis import strategies as st

from brokers.pubsub import InvalidQueueName, NameScheme, PubSubBroker, QueueResources

DEFAULT_QUEUE = "consensus-engine-jobs"


def test_default_queue_resources() -> None:
    assert NameScheme().resources(DEFAULT_QUEUE) == QueueResources(
        queue_name=DEFAULT_QUEUE,
        topic="consensus-engine-jobs",
        subscription="consensus-engine-jobs-sub",
        dead_letter_topic="consensus-engine-jobs-dlq",
        dead_letter_subscription="consensus-engine-jobs-dlq-sub",
    )


def test_delay_queue_resources() -> None:
    delay = NameScheme().delay_resources(DEFAULT_QUEUE)
    assert delay.queue_name == "consensus-engine-jobs.DQ"
    assert delay.topic == "consensus-engine-jobs.DQ"
    assert delay.subscription == "consensus-engine-jobs.DQ-sub"
    # Asking with the delay queue's own name gives the same answer.
    assert NameScheme().delay_resources(dq_name(DEFAULT_QUEUE)) == delay


def test_each_queue_gets_its_own_subscription() -> None:
    scheme = NameScheme()
    jobs, high = scheme.resources(DEFAULT_QUEUE), scheme.resources("consensus-engine-jobs-high")
    assert high.topic == "consensus-engine-jobs-high"
    assert high.subscription == "consensus-engine-jobs-high-sub"
    assert high.dead_letter_topic == "consensus-engine-jobs-high-dlq"
    assert high.subscription != jobs.subscription
    assert high.topic != jobs.topic


def test_namespace_prefixes_every_id() -> None:
    plain = NameScheme().resources(DEFAULT_QUEUE)
    spaced = NameScheme("t0a1b2c3d-").resources(DEFAULT_QUEUE)
    for field in ("topic", "subscription", "dead_letter_topic", "dead_letter_subscription"):
        assert getattr(spaced, field) == "t0a1b2c3d-" + getattr(plain, field)
    assert spaced.queue_name == DEFAULT_QUEUE
    delay = NameScheme("ns.").delay_resources(DEFAULT_QUEUE)
    assert delay.topic == "ns.consensus-engine-jobs.DQ"
    assert delay.subscription == "ns.consensus-engine-jobs.DQ-sub"


def test_subscription_override_applies_to_the_main_queue_only() -> None:
    scheme = NameScheme("ns-", {DEFAULT_QUEUE: "legacy-jobs"})
    assert scheme.resources(DEFAULT_QUEUE).subscription == "ns-legacy-jobs"
    assert scheme.delay_resources(DEFAULT_QUEUE).subscription == "ns-consensus-engine-jobs.DQ-sub"


@pytest.mark.parametrize(
    ("queue_name", "namespace", "complaint"),
    [
        ("ab", "", "3-255 characters"),
        ("1jobs", "", "start with a letter"),
        ("_jobs", "", "start with a letter"),
        ("jobs", "9-", "start with a letter"),
        ("google-jobs", "", "must not start with 'goog'"),
        ("jobs", "goog-", "must not start with 'goog'"),
        ("a" * 256, "", "3-255 characters"),
        ("jobs now", "", "letters, digits"),
        ("jobs/now", "", "letters, digits"),
        ("jobs:now", "", "letters, digits"),
        ("jobs\u00e9", "", "letters, digits"),
    ],
)
def test_invalid_ids_are_refused_with_the_reason(
    queue_name: str, namespace: str, complaint: str
) -> None:
    with pytest.raises(InvalidQueueName, match=complaint) as raised:
        NameScheme(namespace).resources(queue_name)
    assert repr(namespace + queue_name)[:40].rstrip("'") in str(raised.value)


def test_length_limit_counts_the_longest_suffix() -> None:
    # "-dlq-sub" is the longest suffix of a main queue's ids: 255 - 8 = 247.
    NameScheme().resources("a" * 247)
    with pytest.raises(InvalidQueueName, match="subscription id"):
        NameScheme().resources("a" * 248)
    # A declared queue also needs its delay queue: ".DQ-dlq-sub" leaves 244.
    NameScheme().delay_resources("a" * 244)
    with pytest.raises(InvalidQueueName):
        NameScheme().delay_resources("a" * 245)


def test_names_that_pubsub_accepts_but_dramatiq_users_might_not_expect() -> None:
    for name in ("abc", "a.b", "a_b", "a-b", "A~b", "a+b", "a%b"):
        assert NameScheme().resources(name).topic == name


@pytest.mark.parametrize("queue_name", ["x-dlq", "jobs-dlq", "jobs-dlq.DQ"])
def test_queue_named_like_a_dead_letter_topic_is_refused(queue_name: str) -> None:
    with pytest.raises(InvalidQueueName, match="reserved for dead-letter topics"):
        NameScheme().resources(queue_name)


def test_broker_refuses_invalid_names_when_actors_are_declared() -> None:
    broker = PubSubBroker(project="test-project", emulator_host="127.0.0.1:9")
    with pytest.raises(InvalidQueueName, match="start with a letter"):
        dramatiq.actor(actor_name="a", queue_name="_private", broker=broker)(lambda: None)
    with pytest.raises(InvalidQueueName, match="reserved"):
        broker.declare_queue("x-dlq")
    assert broker.get_declared_queues() == set()
    # With a namespace the same queue name is fine: the id starts with a letter.
    spaced = PubSubBroker(project="test-project", namespace="ns-", emulator_host="127.0.0.1:9")
    dramatiq.actor(actor_name="a", queue_name="_private", broker=spaced)(lambda: None)
    assert spaced.queues["_private"].topic == "ns-_private"
    assert spaced.get_declared_queues() == {"_private"}
    assert spaced.get_declared_delay_queues() == {"_private.DQ"}


# -- no collisions ------------------------------------------------------------------------

# Dramatiq queue names are [a-zA-Z_][a-zA-Z0-9._-]*; build them from fragments
# that look like the suffixes the scheme adds, so near-misses are likely.
_FRAGMENTS = st.sampled_from(
    ["a", "b", "_", "-", ".", "sub", "-sub", "dlq", "-dlq", ".DQ", "DQ", "-dlq-sub", "jobs"]
)
_QUEUE_NAMES = st.builds(
    lambda head, rest: head + "".join(rest),
    st.sampled_from(["a", "b", "jobs", "x"]),
    st.lists(_FRAGMENTS, max_size=5),
)
TRICKY = [
    "jobs",
    "jobs-sub",
    "jobs-dlq-sub",
    "jobs_sub",
    "jobs.sub",
    "jobs-high",
    "jobs.high",
    "jobs_high",
    "jobsDQ",
    "jobs-DQ",
    "jobs.DQ-sub",
    "jobs-sub-sub",
    "a_b",
    "a-b",
    "a.b",
]


def _ids_by_kind(scheme: NameScheme, queue_names: set[str]) -> tuple[list[str], list[str]]:
    """Every topic id and every subscription id the queues (and their delay queues) use."""
    topics: list[str] = []
    subscriptions: list[str] = []
    for name in queue_names:
        for resources in (scheme.resources(name), scheme.delay_resources(name)):
            topics += [resources.topic, resources.dead_letter_topic]
            subscriptions += [resources.subscription, resources.dead_letter_subscription]
    return topics, subscriptions


def _declarable(scheme: NameScheme, name: str) -> bool:
    if name.endswith((".DQ", ".XQ")):
        return False  # Dramatiq's own delay/dead-letter queue names, not queues of their own
    try:
        scheme.resources(name)
        scheme.delay_resources(name)
    except InvalidQueueName:
        return False
    return True


def test_tricky_names_do_not_collide() -> None:
    scheme = NameScheme("ns-")
    assert all(_declarable(scheme, name) for name in TRICKY)
    topics, subscriptions = _ids_by_kind(scheme, set(TRICKY))
    assert len(topics) == len(set(topics))
    assert len(subscriptions) == len(set(subscriptions))


@given(st.sets(_QUEUE_NAMES, min_size=2, max_size=12), st.sampled_from(["", "ns-", "t0.", "x_"]))
def test_no_two_queues_share_a_resource_id(queue_names: set[str], namespace: str) -> None:
    scheme = NameScheme(namespace)
    names = {name for name in queue_names if _declarable(scheme, name)}
    topics, subscriptions = _ids_by_kind(scheme, names)
    assert len(topics) == len(set(topics)), sorted(topics)
    assert len(subscriptions) == len(set(subscriptions)), sorted(subscriptions)
