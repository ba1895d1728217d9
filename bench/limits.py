"""What the shared rate limits cost each LLM call, and whether callers in several processes
together get the rate the limit allows.

Why: before every LLM request, every worker process and API replica takes from its model's
buckets in PostgreSQL (``consensus_engine/db/rate_limits.py``): one statement that locks
the model's row. This measures that statement's round trip when 4 processes of 8 threads
contend for one model (p50/p99), next to a lone caller's and a bare ``SELECT 1``; the
limiter's time per LLM call (its takes and the settling of the tokens the answer used,
not the waits it imposes); and the rate the contenders achieve against the configured
limit (the limiter aims at the limit less one second's share). Each caller plays a worker
thread: it passes the real gate (waiting in-process up to LLM_CAPACITY_WAIT_SECONDS, else
sleeping as a step put back would), "calls" the LLM (a sleep) and settles.

Then the tenant budget's hold per LLM call (``consensus_engine/db/budget_holds.py``): its
reservation (lock the tenant, sum its month of ``llm_calls`` and its holds, insert) and its
settling, for a tenant with a month of recorded calls behind it, by a lone caller and by
the same processes and threads all calling for that one tenant.

    .venv/bin/python -m bench.limits [--limit 600] [--seconds 75] [--processes 4] [--threads 8]
    .venv/bin/python -m bench.limits --quick      # 10 s, too short for a whole minute

It needs only a database: a scratch PostgreSQL database on 127.0.0.1:5432 (SQLite when
that is unreachable, said so at the top), dropped at the end, Ctrl-C included. It exits 0
whatever the figures: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path

import sqlalchemy as sa

from bench import _harness
from bench._harness import fmt as _f
from bench._harness import percentile
from consensus_engine.db.budget_holds import DatabaseHolds
from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.db.models import LlmCall
from consensus_engine.db.rate_limits import DatabaseBuckets
from consensus_engine.db.types import utcnow
from consensus_engine.domain.budgets import Budget, Budgets
from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.llm.errors import LLMCapacityWait
from consensus_engine.llm.gate import CallIntent
from consensus_engine.llm.rate_limits import Bucket, Draw, RateLimitGate, Taken
from consensus_engine.llm.records import LlmCallOutcome
from consensus_engine.pipeline.budget_gate import BudgetGate
from consensus_engine.settings import Settings, load_settings

MODEL = "bench-model"
INPUT_TOKENS, OUTPUT_CAP, OUTPUT_USED = 500, 1_000, 300
TOKENS_PER_MINUTE = 100_000_000  # counted and settled, never the binding limit
LONE_TAKES = 500
START_DELAY_S = 3.0  # for the processes to import and connect before the common start
TENANT = "bench-tenant"
MONTH_OF_CALLS = 20_000  # a busy tenant's recorded calls this month
HOLDS_PER_CALLER = 100


@dataclass
class Timings:
    """What callers measured: the store's round trips and the limiter's time per call."""

    takes_ms: list[float] = field(default_factory=list)
    settles_ms: list[float] = field(default_factory=list)
    per_call_ms: list[float] = field(default_factory=list)
    admitted_at: list[float] = field(default_factory=list)
    sent_away: int = 0

    def merge(self, other: Timings) -> None:
        self.takes_ms += other.takes_ms
        self.settles_ms += other.settles_ms
        self.per_call_ms += other.per_call_ms
        self.admitted_at += other.admitted_at
        self.sent_away += other.sent_away


class TimedStore:
    """The database store, its round trips timed per thread."""

    def __init__(self, store: DatabaseBuckets) -> None:
        self.store = store
        self.local = threading.local()

    def take(
        self, model: str, requests: Draw | None, tokens: Draw | None, patience: float
    ) -> Taken:
        started = time.perf_counter()
        try:
            return self.store.take(model, requests, tokens, patience)
        finally:
            self.local.spent.append((time.perf_counter() - started) * 1000)

    def settle(self, model: str, tokens: Draw | None, pause: float) -> None:
        started = time.perf_counter()
        try:
            self.store.settle(model, tokens, pause)
        finally:
            self.local.settled.append((time.perf_counter() - started) * 1000)


def _settings(limit: int) -> Settings:
    catalogue = {MODEL: {"free": True, "rpm": limit, "tpm": TOKENS_PER_MINUTE}}
    return load_settings(
        model_catalogue_json=json.dumps(catalogue), expand_model=MODEL, review_model=MODEL
    )


def contend(
    url: str, limit: int, threads: int, start_at: float, seconds: float, latency_s: float
) -> Timings:
    """One process: ``threads`` callers from ``start_at`` for ``seconds`` (time.time())."""
    settings = _settings(limit)
    engine = create_engine_from_url(url)
    store = TimedStore(DatabaseBuckets(engine))
    gate = RateLimitGate.from_settings(settings, store)
    intent = CallIntent(
        MODEL, "bench", INPUT_TOKENS, OUTPUT_CAP, patience=settings.llm_capacity_wait_seconds
    )
    results = [Timings() for _ in range(threads)]

    def caller(timings: Timings) -> None:
        store.local.spent, store.local.settled = [], []
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < start_at + seconds:
            store.local.spent, store.local.settled = [], []
            try:
                admission = gate.admit(intent)
            except LLMCapacityWait as wait:
                timings.sent_away += 1
                timings.takes_ms += store.local.spent
                time.sleep(wait.retry_after)  # as a step put back until then
                continue
            timings.admitted_at.append(time.time())
            time.sleep(latency_s)
            admission.settle(INPUT_TOKENS, OUTPUT_USED)
            timings.takes_ms += store.local.spent
            timings.settles_ms += store.local.settled
            timings.per_call_ms.append(sum(store.local.spent) + sum(store.local.settled))

    workers = [threading.Thread(target=caller, args=(t,)) for t in results]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.store.close()
    engine.dispose()
    total = Timings()
    for timings in results:
        total.merge(timings)
    return total


def lone_caller(url: str) -> tuple[list[float], list[float]]:
    """Round trips of a take nobody contends, and of ``SELECT 1`` on a like connection."""
    engine = create_engine_from_url(url)
    store = DatabaseBuckets(engine)
    draw = Draw(Bucket.per_minute(100_000_000), 1)
    takes, pings = [], []
    try:
        for _ in range(LONE_TAKES):
            started = time.perf_counter()
            store.take("lone-model", draw, None, 0.0)
            takes.append((time.perf_counter() - started) * 1000)
        with engine.connect() as connection:
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            for _ in range(LONE_TAKES):
                started = time.perf_counter()
                autocommit.execute(sa.text("SELECT 1")).scalar()
                pings.append((time.perf_counter() - started) * 1000)
    finally:
        store.close()
        engine.dispose()
    return takes, pings


def seed_month(url: str) -> None:
    """A month of recorded calls for the tenant, spread over the month so far."""
    now = utcnow()
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    step = (now - month) / MONTH_OF_CALLS
    engine = create_engine_from_url(url)
    try:
        with session_factory(engine).begin() as session:
            session.add_all(
                LlmCall(
                    tenant=TENANT,
                    step="review",
                    model=MODEL,
                    input_tokens=INPUT_TOKENS,
                    output_tokens=OUTPUT_USED,
                    outcome=LlmCallOutcome.SUCCESS,
                    created_at=month + step * n,
                )
                for n in range(MONTH_OF_CALLS)
            )
    finally:
        engine.dispose()


def hold_calls(url: str, threads: int, start_at: float) -> list[float]:
    """One process: ``threads`` callers, each holding then settling ``HOLDS_PER_CALLER``
    calls of the tenant, from ``start_at``; the ms each hold and settle took."""
    engine = create_engine_from_url(url)
    settings = _settings(100_000_000)
    budgets = Budgets(tenants={TENANT: Budget(usd_per_day=Decimal(10**6), tokens_per_day=10**12)})
    gate = BudgetGate(
        DatabaseHolds(session_factory(engine)),
        budgets,
        ModelCatalogue.from_settings(settings),
        hold_seconds=60,
    )
    timings: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        mine = []
        time.sleep(max(0.0, start_at - time.time()))
        for _ in range(HOLDS_PER_CALLER):
            started = time.perf_counter()
            gate.admit(CallIntent(MODEL, TENANT, INPUT_TOKENS, OUTPUT_CAP)).settle(
                INPUT_TOKENS, OUTPUT_USED
            )
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            timings.extend(mine)

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    engine.dispose()
    return timings


@dataclass
class Result:
    database: str
    lone_takes_ms: list[float]
    pings_ms: list[float]
    contended: Timings
    wall_s: float
    lone_holds_ms: list[float] = field(default_factory=list)
    contended_holds_ms: list[float] = field(default_factory=list)


def run(args: argparse.Namespace) -> Result:
    with (
        tempfile.TemporaryDirectory(prefix="bench-limits-") as work_dir,
        _harness.scratch_database(args.database_url, Path(work_dir)) as (url, database),
    ):
        print(f"Servers:\n  {'database':10}{database}", flush=True)
        takes, pings = lone_caller(url)
        start_at = time.time() + START_DELAY_S
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.processes, mp_context=spawn) as pool:
            futures = [
                pool.submit(
                    contend,
                    url,
                    args.limit,
                    args.threads,
                    start_at,
                    args.seconds,
                    args.latency_ms / 1000,
                )
                for _ in range(args.processes)
            ]
            contended = Timings()
            for future in futures:
                contended.merge(future.result())
            seed_month(url)
            lone_holds = hold_calls(url, 1, time.time())
            start_at = time.time() + START_DELAY_S
            holds = [
                pool.submit(hold_calls, url, args.threads, start_at) for _ in range(args.processes)
            ]
            contended_holds = [ms for future in holds for ms in future.result()]
        return Result(database, takes, pings, contended, args.seconds, lone_holds, contended_holds)


def _percentiles(samples: list[float]) -> str:
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    return f"{_f(p50, '.2f', 8)} {_f(p99, '.2f', 8)}"


def report(args: argparse.Namespace, result: Result) -> None:
    contended = result.contended
    print(f"\nRound trips (ms), {args.processes} processes x {args.threads} threads on one model:")
    print(f"  {'':44}{'p50':>8} {'p99':>8} {'count':>8}")
    rows = [
        ("SELECT 1, lone", result.pings_ms),
        ("take, lone (never refused)", result.lone_takes_ms),
        ("take, contended", contended.takes_ms),
        ("settle (tokens used), contended", contended.settles_ms),
        ("limiter time per LLM call, contended", contended.per_call_ms),
    ]
    for title, samples in rows:
        print(f"  {title:44}{_percentiles(samples)} {len(samples):8d}")
    admitted = sorted(contended.admitted_at)
    burst = math.ceil(args.limit / 60)  # what a full bucket lets through at once
    steady = admitted[burst:]
    span = steady[-1] - steady[0] if len(steady) > 1 else 0.0
    achieved = (len(steady) - 1) / span * 60 if span else math.nan
    print(f"\nRate (requests a minute), {len(admitted)} calls in {args.seconds:.0f} s:")
    share = args.limit / 60
    print(f"  {'configured limit':44}{args.limit:8d}")
    print(f"  {'steady rate allowed (limit less 2 s share)':44}{args.limit - 2 * share:8.1f}")
    print(
        f"  {'achieved, after the first burst':44}{_f(achieved, '.1f', 8)}  "
        f"({achieved / args.limit:.1%} of the limit)"
    )
    print(f"  {'allowed in a minute (limit less 1 s share)':44}{args.limit - share:8.1f}")
    print(f"  {'most in any one-minute window':44}{_f(_busiest_minute(admitted), '.0f', 8)}")
    print(
        f"  callers sent away to come back later: {contended.sent_away} "
        f"({contended.sent_away / max(1, len(admitted)):.2f} a call)"
    )
    print(
        f"\nBudget hold and settle per LLM call (ms), one tenant with {MONTH_OF_CALLS} calls "
        "this month:"
    )
    print(f"  {'':44}{'p50':>8} {'p99':>8} {'count':>8}")
    for title, samples in (
        ("lone caller", result.lone_holds_ms),
        (f"{args.processes} processes x {args.threads} threads", result.contended_holds_ms),
    ):
        print(f"  {title:44}{_percentiles(samples)} {len(samples):8d}")


def _busiest_minute(times: list[float]) -> float:
    """The most calls in any 60 s; NaN when the run was shorter than a minute."""
    if not times or times[-1] - times[0] < 60:
        return math.nan
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - 60:
            start += 1
        most = max(most, end - start + 1)
    return float(most)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _harness.parser("limits", __doc__)
    add = parser.add_argument
    add("--limit", type=int, default=600, help="requests a minute for the model (default 600)")
    add("--seconds", type=float, default=None, help="how long the callers run (default 75)")
    add("--processes", type=int, default=4)
    add("--threads", type=int, default=8, help="callers in each process")
    add("--latency-ms", type=float, default=50.0, help="the simulated LLM call")
    add("--quick", action="store_true", help="sanity run: 10 s")
    add("--database-url", default=_harness.DATABASE_SERVER)
    args = parser.parse_args(argv)
    _harness.quick_defaults(args, seconds=(10.0, 75.0))
    if args.limit < 1 or args.seconds <= 0 or args.processes < 1 or args.threads < 1:
        parser.error("--limit, --seconds, --processes and --threads must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    details = (
        f"\n  {args.processes} processes x {args.threads} callers for {args.seconds:.0f} s on one "
        f"model limited to {args.limit} requests a minute, LLM calls of {args.latency_ms:.0f} ms"
    )
    return _harness.main(
        "limits",
        details,
        partial(run, args),
        partial(report, args),
        stopping="the callers and the database",
        footer="figures only, exit 0",
    )


if __name__ == "__main__":
    sys.exit(main())
