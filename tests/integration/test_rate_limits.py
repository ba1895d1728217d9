"""The shared rate-limit buckets in real PostgreSQL (and SQLite): one statement per take,
the database's clock, the model's row locked for that statement only.

Limits are low (one request a second), so that a test's own pace, however loaded the
machine, barely refills a bucket, and times can be checked to a tenth of a second
without sleeping.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from consensus_engine.db.engine import create_engine_from_url
from consensus_engine.db.migrations import upgrade_head
from consensus_engine.db.models import LlmRateLimit
from consensus_engine.db.rate_limits import DatabaseBuckets
from consensus_engine.llm.rate_limits import Bucket, Draw

MODEL = "gpt-test"
REQUESTS = Bucket.per_minute(60)  # one at once, then one every 1.03 s
ONE = Draw(REQUESTS, 1)
STEP = ONE.seconds
TOKENS = Bucket.per_minute(600)  # 10 at once, then 9.67 a second
TOLERANCE = 0.1


@pytest.fixture
def store(db_session: Session, db_engine: Engine) -> Iterator[DatabaseBuckets]:
    """A store on the migrated database; asking for ``db_session`` empties it afterwards."""
    buckets = DatabaseBuckets(db_engine)
    try:
        yield buckets
    finally:
        buckets.close()


def empty(store: DatabaseBuckets) -> None:
    """Take all the requests bucket holds: one."""
    assert store.take(MODEL, ONE, None, 0.0).admitted


def row(db_engine: Engine) -> LlmRateLimit:
    with Session(db_engine) as session:
        found = session.get(LlmRateLimit, MODEL)
        assert found is not None
        return found


def test_a_full_bucket_lets_its_burst_through_then_gives_turns_a_draw_apart(
    store: DatabaseBuckets,
) -> None:
    empty(store)

    waits = [store.take(MODEL, ONE, None, patience=60.0).wait for _ in range(4)]

    # The first waiter's turn is when the draw the refusal found missing has refilled.
    assert STEP - TOLERANCE < waits[0] <= STEP
    gaps = [later - earlier for earlier, later in itertools.pairwise(waits)]
    assert gaps == pytest.approx([STEP] * 3, abs=TOLERANCE)


def test_a_caller_that_cannot_wait_for_its_turn_is_told_when_to_come_back(
    store: DatabaseBuckets,
) -> None:
    empty(store)
    patience = 2.5 * STEP
    answers = [store.take(MODEL, ONE, None, patience).wait for _ in range(6)]

    # Two turns come within the patience; the callers after them are sent away to come
    # back when their own turn would be near enough, as far apart as the turns.
    queued, away = answers[:2], answers[2:]
    assert all(wait <= patience for wait in queued)
    assert away == pytest.approx(
        [queued[1] + (n + 1) * STEP - patience for n in range(4)], abs=TOLERANCE
    )


def test_a_caller_is_admitted_by_both_buckets_or_by_neither(
    store: DatabaseBuckets, db_engine: Engine
) -> None:
    requests = Draw(Bucket.per_minute(600), 1)  # room for ten
    assert store.take(MODEL, requests, Draw(TOKENS, 10), 0.0).admitted
    requests_taken = row(db_engine).requests_full_at

    refused = store.take(MODEL, requests, Draw(TOKENS, 10), 0.0)

    assert not refused.admitted
    assert 10 / TOKENS.rate - TOLERANCE < refused.wait <= 10 / TOKENS.rate
    assert row(db_engine).requests_full_at == requests_taken  # no request was taken


def test_a_draw_larger_than_the_bucket_passes_only_when_it_is_full(
    store: DatabaseBuckets,
) -> None:
    assert store.take(MODEL, None, Draw(TOKENS, 50), 0.0).admitted  # a full bucket
    refused = store.take(MODEL, None, Draw(TOKENS, 1), 0.0)
    assert not refused.admitted
    # 40 tokens of debt and one more token's worth before anyone passes again.
    assert refused.wait == pytest.approx(41 / TOKENS.rate, abs=TOLERANCE)


def test_settling_gives_back_the_tokens_an_answer_did_not_use(store: DatabaseBuckets) -> None:
    assert store.take(MODEL, None, Draw(TOKENS, 10), 0.0).admitted
    assert not store.take(MODEL, None, Draw(TOKENS, 10), 0.0).admitted

    store.settle(MODEL, Draw(TOKENS, -8), pause=0.0)

    assert store.take(MODEL, None, Draw(TOKENS, 8), 0.0).admitted


def test_a_pause_holds_every_caller_however_full_the_buckets(store: DatabaseBuckets) -> None:
    assert store.take(MODEL, ONE, None, 0.0).admitted

    store.settle(MODEL, None, pause=5.0)
    store.settle(MODEL, None, pause=1.0)  # a shorter pause does not cut a longer one

    refused = store.take(MODEL, ONE, None, patience=60.0)
    assert not refused.admitted
    assert 4.9 < refused.wait <= 5.0


def test_concurrent_takers_never_get_more_than_the_buckets_hold(
    db_session: Session, database_url: str
) -> None:
    """Eight takers with a connection each (as eight processes would have) hammer one
    model for a second and a half: together they never get more than the bucket holds and
    earns in that time, and on a machine not too busy to keep up, nearly that."""
    bucket = Bucket.per_minute(3_000)  # 50 at once, then 48.3 a second
    engine = create_engine_from_url(database_url, pool_size=8)
    stores = [DatabaseBuckets(engine) for _ in range(8)]
    admitted = [0] * len(stores)
    start = threading.Barrier(len(stores) + 1)
    seconds = 1.5

    def hammer(index: int) -> None:
        start.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if stores[index].take(MODEL, Draw(bucket, 1), None, 0.0).admitted:
                admitted[index] += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    for each in stores:
        each.close()
    engine.dispose()

    most = bucket.capacity + bucket.rate * elapsed
    assert 0.75 * most <= sum(admitted) <= most + 1, (sum(admitted), most)
    assert all(count > 0 for count in admitted)


def test_a_connection_the_server_dropped_is_replaced(
    db_session: Session, database_url: str, db_engine: Engine
) -> None:
    engine = create_engine_from_url(database_url, connect_args={"application_name": "limiter"})
    store = DatabaseBuckets(engine)
    ten = Draw(Bucket.per_minute(600), 1)
    try:
        assert store.take(MODEL, ten, None, 0.0).admitted
        with db_engine.begin() as connection:
            killed = connection.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'limiter'"
                )
            )
        assert killed == 1

        assert store.take(MODEL, ten, None, 0.0).admitted
    finally:
        store.close()
        engine.dispose()


def test_sqlite_runs_the_same_statement(sqlite_url: str) -> None:
    upgrade_head(sqlite_url)
    engine = create_engine_from_url(sqlite_url)
    store = DatabaseBuckets(engine)
    try:
        empty(store)
        refused = store.take(MODEL, ONE, None, patience=60.0)
        assert STEP - TOLERANCE < refused.wait <= STEP
        store.settle(MODEL, None, pause=3.0)
        assert store.take(MODEL, ONE, None, patience=60.0).wait > 2.9
    finally:
        store.close()
        engine.dispose()
