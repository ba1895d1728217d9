"""Requests per second and latency of the HTTP API at 50 concurrent clients.

Why: the API is what users wait on. A submission stores a run with its pending steps,
commits and publishes one message; a read loads a run with its proposal, reviews and
decision; a list shows a page of 30 runs. Its targets (issue 16) are shares of the rate
of ``GET /health`` (the framework's floor: HTTP, routing, middleware, no database)
measured in the same run: reads 0.5x with p99 under 100 ms, lists 0.4x, submissions
0.25x with p99 under 150 ms. Next to them it measures submissions with ``PUBSUB_USE_MOCK=true`` (no
publish), so the share of each part shows; CPU per request of every process (the API,
PostgreSQL's backends, the emulator, this load generator) says where the cores went.

    .venv/bin/python -m bench.api [--clients 50] [--seconds 10]
    .venv/bin/python -m bench.api --quick        # 3 s a row

Everything runs here: a scratch PostgreSQL database on 127.0.0.1:5432 (SQLite when that is
unreachable, said so at the top), Google's Pub/Sub emulator (or PUBSUB_EMULATOR_HOST), the
API as a real server (``uvicorn --factory consensus_engine.api.app:create_app`` in a
subprocess, its rate limits opened wide) and, briefly, a worker with the offline LLM so
that the reads load completed runs. The clients are asyncio keep-alive HTTP/1.1
connections in this process (one thread, so no GIL convoy inflates the latencies). All of
it is stopped or dropped at the end, Ctrl-C included. It exits 0 whether the targets are
met or not: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from bench import _harness
from bench._harness import Skipped, attempt, percentile, print_table
from bench._harness import fmt as _f
from consensus_engine.devtools.loopback import ApiClient, http_request
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.devtools.process import environ_without_settings
from consensus_engine.devtools.service import HOST, ApiProcess, start_api
from consensus_engine.devtools.stack import REPO_ROOT, SAMPLE_IDEA, Stack, queue_env

READY_TIMEOUT_S = 60.0
SEED_TIMEOUT_S = 120.0
ALONE_WARMUP_S = 0.3
HEALTH_TITLE = "GET /health (framework floor)"
READ_TITLE = "GET /v1/runs/{id} (completed runs)"
LIST_TITLE = "GET /v1/runs (a page of 30)"
SUBMIT_TITLE = "POST /v1/full-review (Pub/Sub emulator)"
MOCK_TITLE = "POST /v1/full-review (PUBSUB_USE_MOCK)"
LIST_PAGE = 30


@dataclass(frozen=True)
class Target:
    """Issue 16's target for a row: a share of ``GET /health``'s rate in the same run, and
    a p99 bound where it sets one."""

    ratio: float
    p99_ms: float | None = None

    def describe(self) -> str:
        p99 = f", p99 < {self.p99_ms:.0f} ms" if self.p99_ms is not None else ""
        return f">= {self.ratio:g}x GET /health{p99}"

    def met(self, rate: float, health_rate: float, p99_ms: float) -> bool:
        fast = self.p99_ms is None or p99_ms < self.p99_ms
        return rate >= self.ratio * health_rate and fast


READ_TARGET = Target(0.5, 100.0)
LIST_TARGET = Target(0.4)
SUBMIT_TARGET = Target(0.25, 150.0)
# The API's own environment: quiet, limits opened wide (the run is about speed, not about
# the limiter), everything else at the defaults a deployment starts from.
API_ENV: dict[str, str] = {
    "ENV": "production",
    "LOG_LEVEL": "WARNING",
    "API_RATE_LIMIT_PER_MINUTE": "1000000",
    "API_RATE_LIMIT_BURST": "100000",
    "API_MAX_RUNS_IN_FLIGHT": "1000000",
    "PUBSUB_AUTO_CREATE": "true",
}


def server_seconds(server: ApiProcess, route: str) -> tuple[float, float]:
    """(seconds, requests) the API itself counted for ``route``, "GET /health" (its metrics
    port); none with several workers, which have no metrics port (one process's would not
    give the whole API's mean anyway)."""
    if not server.metrics_port:
        return 0.0, 0.0
    found = {"sum": 0.0, "count": 0.0}
    text = http_request(server.metrics_url).body.decode()
    for family in text_string_to_metric_families(text):
        if family.name == "consensus_api_request_duration_seconds":
            for sample in family.samples:  # its _sum and _count (and _bucket, _created)
                if f"{sample.labels['method']} {sample.labels['route']}" == route:
                    found[sample.name.rpartition("_")[2]] = sample.value
    return found["sum"], found["count"]


class Connection:
    """A minimal keep-alive HTTP/1.1 client: one request at a time, answers read whole."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            with contextlib.suppress(OSError):
                await self.streams[1].wait_closed()
        self.streams = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.streams = self.streams or await asyncio.open_connection(HOST, self.port)
        reader, writer = self.streams
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        # Our JSON answers all say their Content-Length (none is streamed or chunked).
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection") == b"close":
            await self.close()
        return int(head[9:12]), body


def raw_request(method: str, path: str, key: str, body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Authorization: Bearer {key}"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass
class Load:
    """What one row measured, in its measurement window only."""

    window_s: float
    total: int = 0  # answers of any kind, warm-up included (what the CPU meters span)
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.window_s if self.window_s > 0 else math.nan

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)


async def drive(
    port: int,
    requests: list[bytes],
    expected: int,
    clients: int,
    warmup_s: float,
    window_s: float,
    keep_bodies: bool = False,
) -> Load:
    """``clients`` connections sending back to back for ``warmup_s`` + ``window_s``; all of
    them together cycle through ``requests``."""
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup_s
    until = measure_from + window_s
    load = Load(window_s)
    counter = iter(range(10**12))

    async def client() -> None:
        connection = Connection(port)
        try:
            while loop.time() < until:
                raw = requests[next(counter) % len(requests)]
                started = loop.time()
                try:
                    status, body = await connection.request(raw)
                except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                    await connection.close()
                    status, body = -1, type(error).__name__.encode()
                ended = loop.time()
                load.total += 1
                if ended < measure_from or ended > until:
                    continue
                if status == expected:
                    load.latencies_ms.append((ended - started) * 1000)
                    if keep_bodies:
                        load.bodies.append(body)
                else:
                    load.errors[str(status) if status > 0 else body.decode()] += 1
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return load


# PostgreSQL publishes a backend's statistics at most once a second (at the end of a
# transaction); waiting this long before reading them lets the last ones in.
DB_STATS_SETTLE_S = 1.2


def db_counters(sessions: sessionmaker[Session]) -> dict[str, float]:
    """PostgreSQL's own statistics of the scratch database now (pg_stat_database): connections
    opened, time backends spent running statements, commits; none on SQLite."""
    with sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            return {}
        row = session.execute(
            sa.text(
                "SELECT sessions, active_time AS active_ms, xact_commit AS commits "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
        ).one_or_none()
    return {name: float(value) for name, value in row._mapping.items()} if row else {}


@dataclass
class Row:
    target: Target | None  # None: no target (a comparison row)
    load: Load
    alone: Load  # one client: the latency without queueing
    server_ms: float  # mean time inside the API (its middleware), from its metrics port
    cpu_s: dict[str, float]
    metered_s: float  # wall time the CPU meters spanned (warm-up and window)
    db: dict[str, float]  # what PostgreSQL counted during warm-up and window (db_counters)
    note: str = ""

    @property
    def alone_ms(self) -> float:
        return self.alone.percentile(0.5)

    def per_request_ms(self, process: str) -> float:
        """CPU milliseconds ``process`` spent per answer (warm-up and window)."""
        if not self.load.total or process not in self.cpu_s:
            return math.nan
        return self.cpu_s[process] / self.load.total * 1000


Outcome = Row | Skipped
Measure = Callable[["Bench", ApiProcess], Row]


@dataclass
class Bench:
    """What the rows share: the options, the servers, this run's own queues (so an emulator
    that outlives it holds no stale messages) and a stack on them, whose sessions read the
    database's statistics and whose worker completes the runs the reads load."""

    args: argparse.Namespace
    servers: _harness.Servers
    queues: dict[str, str]
    stack: Stack

    def measure(
        self,
        server: ApiProcess,
        requests: list[bytes],
        route: str,
        *,
        expected: int = 200,
        target: Target | None = None,
        keep_bodies: bool = False,
    ) -> Row:
        """A row for ``requests`` to ``route`` ("GET /health"): one client, then the load."""
        args, sessions = self.args, self.stack.sessions
        load_with = partial(drive, server.port, requests, expected)
        alone = asyncio.run(load_with(1, ALONE_WARMUP_S, args.alone_seconds))
        shared = _harness.shared_sources(sessions, self.servers.emulator.host)
        meter = _harness.CpuMeter({"API": server.pids, **shared, "clients": _harness.this_process})
        time.sleep(DB_STATS_SETTLE_S)
        db_before = db_counters(sessions)
        before = server_seconds(server, route)
        meter.start()
        busy_before = _harness.machine_busy_seconds()
        metered_from = time.monotonic()
        load = asyncio.run(load_with(args.clients, args.warmup, args.seconds, keep_bodies))
        cpu = meter.stop()
        metered_s = time.monotonic() - metered_from
        cpu["others"] = _harness.machine_busy_seconds() - busy_before - sum(cpu.values())
        after = server_seconds(server, route)
        spent, count = after[0] - before[0], after[1] - before[1]
        server_ms = spent / count * 1000 if count else math.nan
        time.sleep(DB_STATS_SETTLE_S)
        db_after = db_counters(sessions)
        db = {name: db_after[name] - db_before[name] for name in db_after.keys() & db_before.keys()}
        return Row(target, load, alone, server_ms, cpu, metered_s, db)


def seed_completed_runs(bench: Bench, server: ApiProcess, count: int) -> list[uuid.UUID]:
    """Runs with a proposal, five reviews and a decision, for the reads to load.

    Submitted through the API, run by a real worker with the offline LLM (no latency),
    which is stopped before any measurement.
    """
    client = ApiClient(server.base_url, server.key)
    run_ids = []
    for _ in range(count):
        reply = client.post("/v1/full-review", {"idea": SAMPLE_IDEA})
        if reply.status != 202:
            raise RuntimeError(
                f"could not submit a run to read: {reply.status} {reply.body[:300]!r}"
            )
        run_ids.append(uuid.UUID(reply.json()["run_id"]))
    with OfflineLLMServer(latency_ms=0) as llm:
        env = {"OPENAI_BASE_URL": llm.base_url}
        worker = bench.stack.start_worker(name="seed", env=env, wait_ready=False)
        try:
            worker.wait_until_ready(READY_TIMEOUT_S)
            wait = partial(bench.stack.wait_for_runs, timeout=SEED_TIMEOUT_S, poll_s=0.2)
            ended = wait(run_ids, workers=[worker])
        finally:
            worker.stop()
    if ended < len(run_ids):
        raise RuntimeError(f"{len(run_ids) - ended} of {len(run_ids)} runs to read did not finish")
    return run_ids


def measure_api(
    bench: Bench, name: str, tenant: str, measures: Mapping[str, Measure], **env: str
) -> list[tuple[str, Outcome]]:
    """The rows of ``measures`` against one API server, started for them with ``env`` and a
    key for ``tenant``, each with a line saying how it went (an error fails that row only)."""
    env = {**environ_without_settings(), **API_ENV, **bench.queues, **env}
    log_path, workers = bench.servers.work_dir / f"api-{name}.log", bench.args.api_workers
    server = start_api(env, log_path, tenant=tenant, workers=workers, cwd=REPO_ROOT)
    rows: list[tuple[str, Outcome]] = []
    try:
        for title, measure in measures.items():
            outcome = attempt(partial(measure, bench, server))
            rate = f"{outcome.load.rate:.0f}/s" if isinstance(outcome, Row) else str(outcome)[:120]
            print(f"  ... {title}: {rate}", flush=True)
            rows.append((title, outcome))
        return rows
    finally:
        server.stop(timeout=15)


def measure_health(bench: Bench, server: ApiProcess) -> Row:
    health = raw_request("GET", "/health", server.key)
    return bench.measure(server, [health], "GET /health")


def measure_reads(bench: Bench, server: ApiProcess) -> Row:
    # Enough for a full page of the list, which is measured next on the same runs.
    run_ids = seed_completed_runs(bench, server, max(bench.args.read_runs, LIST_PAGE + 1))
    requests = [raw_request("GET", f"/v1/runs/{run_id}", server.key) for run_id in run_ids]
    sample = ApiClient(server.base_url, server.key).get(f"/v1/runs/{run_ids[0]}").body
    row = bench.measure(server, requests, "GET /v1/runs/{run_id}", target=READ_TARGET)
    row.note = f"{len(run_ids)} runs, {len(sample) / 1024:.1f} KiB each"
    return row


def measure_list(bench: Bench, server: ApiProcess) -> Row:
    """The newest page of the tenant's (completed) runs, as a dashboard polls it."""
    path = f"/v1/runs?limit={LIST_PAGE}"
    sample = ApiClient(server.base_url, server.key).get(path).json()
    if len(sample["runs"]) < LIST_PAGE:
        raise RuntimeError(f"the list has {len(sample['runs'])} runs, not a page of {LIST_PAGE}")
    requests = [raw_request("GET", path, server.key)]
    return bench.measure(server, requests, "GET /v1/runs", target=LIST_TARGET)


def measure_submit(bench: Bench, server: ApiProcess) -> Row:
    body = json.dumps({"idea": SAMPLE_IDEA}).encode()
    submit = raw_request("POST", "/v1/full-review", server.key, body)
    row = bench.measure(
        server,
        [submit],
        "POST /v1/full-review",
        expected=202,
        target=SUBMIT_TARGET,
        keep_bodies=True,
    )
    not_enqueued = sum(1 for raw in row.load.bodies if not json.loads(raw).get("enqueued"))
    row.load.bodies.clear()
    if not_enqueued:
        row.note = f"{not_enqueued} answered enqueued=false"
    return row


def print_rates(rows: list[tuple[str, Outcome]], clients: int, window_s: float) -> None:
    def cells(row: Row) -> str:
        load = row.load
        slowest = max(load.latencies_ms, default=math.nan)
        details = [row.note] if row.note else []
        details += [f"{count} x {what}" for what, count in load.errors.most_common(3)]
        return (
            f"{_f(load.rate, ',.0f', 8)}{_f(load.percentile(0.5), '.1f', 8)}"
            f"{_f(load.percentile(0.99), '.1f', 8)}{_f(slowest, '.1f', 8)}"
            f"{_f(row.server_ms, '.1f', 8)}{sum(load.errors.values()):8d}"
            f"{_f(row.alone_ms, '.1f', 8)}"
        ) + (f"\n  {'':4}({'; '.join(details)})" if details else "")

    print_table(
        f"\n{clients} concurrent clients, keep-alive, {window_s:g} s measured per row (ms)",
        f"{'req/s':>8}{'p50':>8}{'p99':>8}{'max':>8}{'in API':>8}{'errors':>8}{'alone':>8}",
        rows,
        cells,
        notes="  (in API: mean time inside the app per request, from its /metrics: routing, "
        "handler,\n   thread-pool wait; alone: p50 with a single client, the latency without "
        "queueing)",
    )


def print_targets(rows: list[tuple[str, Outcome]]) -> None:
    """Issue 16's rows: each figure, its ratio to GET /health in this run, its target."""
    found = {title: row for title, row in rows if isinstance(row, Row) and row.load.latencies_ms}
    health = found.get(HEALTH_TITLE)
    health_rate = health.load.rate if health is not None else math.nan

    def cells(row: Row) -> str:
        load, p99 = row.load, row.load.percentile(0.99)
        commits = row.db.get("commits", math.nan) / load.total if load.total else math.nan
        verdict = ""
        if row.target is not None:
            met = row.target.met(load.rate, health_rate, p99)
            verdict = f"{row.target.describe()}  [{'met' if met else 'MISSED'}]"
        return (
            f"{_f(load.rate, ',.0f', 8)}{_f(load.rate / health_rate, '.2f', 7)}x"
            f"{_f(p99, '.1f', 8)}{_f(row.per_request_ms('API'), '.2f', 9)}"
            f"{_f(commits, '.2f', 9)}  {verdict}"
        )

    shown = (HEALTH_TITLE, READ_TITLE, SUBMIT_TITLE, LIST_TITLE)
    print_table(
        "\nIssue 16 targets (ratios to GET /health within this run)",
        f"{'req/s':>8}{'ratio':>8}{'p99 ms':>8}{'API CPU':>9}{'commits':>9}  target",
        [(title, outcome) for title, outcome in rows if title in shown],
        cells,
        notes="  (API CPU: ms of the API process per request; commits: PostgreSQL "
        "transactions\n   committed per request, from pg_stat_database; warm-up included)",
    )


CPU_COLUMNS = ("API", "PostgreSQL", "emulator", "clients")


def print_cpu(rows: list[tuple[str, Outcome]]) -> None:
    """CPU per request of each process, and how busy the machine was (others included)."""
    cpus = os.cpu_count() or 1

    def cells(row: Row) -> str:
        per_request = "".join(_f(row.per_request_ms(name), ".2f", 11) for name in CPU_COLUMNS)
        ours = sum(row.cpu_s.get(name, 0.0) for name in CPU_COLUMNS)
        capacity = row.metered_s * cpus
        others = row.cpu_s.get("others", math.nan)
        return (
            f"{per_request}{ours / row.load.total * 1000:8.2f}"
            f"{ours / capacity * 100:7.0f}%{_f(others / capacity * 100, '.0f', 9)}%"
        )

    print_table(
        f"\nCPU per request (ms, from /proc, warm-up included) and use of the {cpus} CPUs",
        "".join(f"{name:>11}" for name in CPU_COLUMNS)
        + f"{'ours':>8}{'ours %':>8}{'others %':>10}",
        [(title, row) for title, row in rows if isinstance(row, Row) and row.load.total],
        cells,
        notes="  (PostgreSQL: the backends of the scratch database alive at either end "
        "(connections\n   opened and closed in between are missed: see below); clients: "
        "this process;\n   others %: the rest of the machine's work, e.g. other test runs)",
    )


def print_database(rows: list[tuple[str, Outcome]]) -> None:
    """What PostgreSQL itself counted: a new connection per request would show here."""
    print_table(
        "\nPostgreSQL per request (its pg_stat_database counters, warm-up included)",
        f"{'commits':>10}{'active ms':>11}{'new conns/s':>13}",
        [(t, row) for t, row in rows if isinstance(row, Row) and row.db and row.load.total],
        lambda row: (
            f"{row.db['commits'] / row.load.total:10.2f}"
            f"{row.db['active_ms'] / row.load.total:11.2f}"
            f"{row.db['sessions'] / row.metered_s:13.1f}"
        ),
        notes="  (active ms: time backends spent running statements; new conns/s: "
        "connections the\n   API opened, e.g. its pool's overflow past DB_POOL_SIZE, "
        "closed again when returned)",
    )


def print_shares(rows: list[tuple[str, Outcome]]) -> None:
    """A submission's parts: by difference of single-client latency (what one request
    waits for) and of API CPU per request (what caps the rate on these cores)."""
    found = {title: row for title, row in rows if isinstance(row, Row) and row.load.latencies_ms}
    health, pubsub, mock = (found.get(t) for t in (HEALTH_TITLE, SUBMIT_TITLE, MOCK_TITLE))
    if health is None or pubsub is None or mock is None:
        return

    def cells(part: tuple[Row, Row | None]) -> str:
        row, base = part
        latency = row.alone_ms - (base.alone_ms if base else 0.0)
        cpu = row.per_request_ms("API") - (base.per_request_ms("API") if base else 0.0)
        return f"{_f(latency, '.1f', 14)}{_f(cpu, '.2f', 10)}"

    parts: list[tuple[str, tuple[Row, Row | None] | Skipped]] = [
        ("framework floor (GET /health)", (health, None)),
        ("+ validation, database (mock - health)", (mock, health)),
        ("+ publish to Pub/Sub (emulator - mock)", (pubsub, mock)),
    ]
    print_table(
        "\nWhere a submission's time goes (ms; differences between rows)",
        f"{'latency alone':>14}{'API CPU':>10}",
        parts,
        cells,
        width=44,
        notes=f"  (plus {pubsub.per_request_ms('emulator'):.2f} ms of the emulator's CPU per "
        f"publish, on the same cores;\n   {mock.load.rate:,.0f} submissions/s without the "
        f"publish, {pubsub.load.rate:,.0f}/s with it)",
    )


def run(args: argparse.Namespace) -> list[tuple[str, Outcome]]:
    with _harness.servers("api", args.database_url) as servers:
        print(
            f"  {'API':10}uvicorn, {args.api_workers} process(es), pool and thread defaults "
            "(DB_POOL_SIZE 5 + DB_MAX_OVERFLOW 10, 40 threads), rate limits opened wide",
            flush=True,
        )
        host, topic = servers.emulator.host, f"bench-api-{secrets.token_hex(4)}"
        queues = queue_env(servers.database_url, host, "bench-api", topic)
        stack = Stack({**_harness.WORKER_ENV, **queues}, servers.work_dir, pool=1)
        try:
            bench = Bench(args, servers, queues, stack)
            measures: dict[str, Measure] = {
                HEALTH_TITLE: measure_health,
                READ_TITLE: measure_reads,
                LIST_TITLE: measure_list,
                SUBMIT_TITLE: measure_submit,
            }  # against the API that publishes to the emulator
            rows: list[tuple[str, Outcome]] = [
                (title, Skipped("no Pub/Sub emulator")) for title in measures
            ]
            if host is not None:
                rows = measure_api(bench, "pubsub", "bench", measures)
            # Submissions against an API whose broker only records (no publish): Pub/Sub's
            # share. Another tenant, so its cap check counts its own runs only, like the first.
            mock = {MOCK_TITLE: measure_submit}
            return rows + measure_api(bench, "mock", "bench-mock", mock, PUBSUB_USE_MOCK="true")
        finally:
            # An emulator that outlives this run keeps nothing of it.
            stack.close(delete_resources=servers.shared_emulator and host is not None)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _harness.parser("api", __doc__)
    add = parser.add_argument
    add("--clients", type=int, default=50, help="concurrent keep-alive connections")
    add("--seconds", type=float, default=None, help="measured seconds per row (default 10)")
    add("--warmup", type=float, default=None, help="unmeasured seconds first (default 2)")
    add(
        "--alone-seconds",
        type=float,
        default=None,
        help="seconds of a single client per row first, for the latency without queueing "
        "(default 2)",
    )
    add("--read-runs", type=int, default=None, help="completed runs the reads cycle through")
    add(
        "--api-workers",
        type=int,
        default=1,
        help="uvicorn worker processes (more than 1 loses TCP_NODELAY on Linux, uvicorn "
        "issue #3149: about 40 ms more per keep-alive request)",
    )
    add(
        "--quick",
        action="store_true",
        help="sanity run: 3 s a row, 1 s warm-up, 1 s alone, 5 runs read",
    )
    add("--database-url", default=_harness.DATABASE_SERVER)
    args = parser.parse_args(argv)
    _harness.quick_defaults(
        args, seconds=(3.0, 10.0), warmup=(1.0, 2.0), read_runs=(5, 20), alone_seconds=(1.0, 2.0)
    )
    if min(args.clients, args.seconds, args.alone_seconds, args.read_runs) <= 0 or args.warmup < 0:
        parser.error("--clients, --seconds, --alone-seconds and --read-runs must be positive")
    if args.api_workers < 1:
        parser.error("--api-workers must be at least 1")
    return args


def report(args: argparse.Namespace, rows: list[tuple[str, Outcome]]) -> None:
    print_rates(rows, args.clients, args.seconds)
    print_cpu(rows)
    print_database(rows)
    print_shares(rows)
    print_targets(rows)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    details = (
        f"\n  targets at {args.clients} clients: reads {READ_TARGET.describe()}; "
        f"lists {LIST_TARGET.describe()};\n  submissions {SUBMIT_TARGET.describe()}"
    )
    return _harness.main(
        "api",
        details,
        partial(run, args),
        partial(report, args),
        stopping="the API, worker, emulator and database",
        footer="the targets are informative, exit 0",
    )


if __name__ == "__main__":
    sys.exit(main())
