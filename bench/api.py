"""Requests per second and latency of the HTTP API at 50 concurrent clients.

Why: the API is what users wait on. A submission stores a run with its pending steps,
commits and publishes one message; a read loads a run with its proposal, reviews and
decision. Targets on this 2-core machine: 200 submissions/s and 1,000 reads/s, each with
p99 under 100 ms. Next to them it measures ``GET /health`` (the framework's floor: HTTP,
routing, middleware, no database) and submissions with ``PUBSUB_USE_MOCK=true`` (no
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
import logging
import math
import os
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bench import _cpu, _stack
from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.devtools.api_process import HOST, ApiProcess, start_api
from consensus_engine.devtools.emulator import pubsub_emulator
from consensus_engine.devtools.environment import environ_without_settings
from consensus_engine.devtools.http_client import http_request
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.devtools.results import Skipped, attempt, attempt_cleanup, percentile
from consensus_engine.devtools.results import fmt as _f
from consensus_engine.devtools.worker import start_worker
from consensus_engine.settings import Settings

IDEA = "Let people book a bike repair slot online and get a text when it is ready."
SUBMIT_TARGET = 200.0
READ_TARGET = 1000.0
P99_TARGET_MS = 100.0
READY_TIMEOUT_S = 60.0
SEED_TIMEOUT_S = 120.0
ALONE_WARMUP_S = 0.3
HEALTH_TITLE = "GET /health (framework floor)"
READ_TITLE = "GET /v1/runs/{id} (completed runs)"
SUBMIT_TITLE = "POST /v1/full-review (Pub/Sub emulator)"
MOCK_TITLE = "POST /v1/full-review (PUBSUB_USE_MOCK)"
# The API's own environment: quiet, limits opened wide (the run is about speed, not about
# the limiter), everything else at the defaults a deployment starts from.
API_ENV: dict[str, str] = {
    "ENV": "production",
    "LOG_LEVEL": "WARNING",
    "API_RATE_LIMIT_PER_MINUTE": "1000000",
    "API_RATE_LIMIT_BURST": "100000",
    "API_MAX_RUNS_IN_FLIGHT": "1000000",
    "PUBSUB_AUTO_CREATE": "true",
    "PUBSUB_PROJECT_ID": "bench-api",
}
_METRIC_LINE = re.compile(
    r'^consensus_api_request_duration_seconds_(sum|count)\{method="([A-Z]+)",route="([^"]+)"\} '
    r"(\S+)$"
)

log = logging.getLogger("bench.api")


# -- the API server ---------------------------------------------------------------------------


def http_get(url: str, key: str | None = None, body: object = None) -> tuple[int, bytes]:
    """One plain request (set-up and metrics, not the measured load); POST with a body."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    reply = http_request(url, body=data, headers=headers)
    return reply.status, reply.body


def server_seconds(server: ApiProcess) -> dict[tuple[str, str], tuple[float, float]]:
    """(method, route) -> (seconds, requests) the API itself counted (its /metrics)."""
    _, body = http_get(server.base_url + "/metrics")
    found: dict[tuple[str, str], list[float]] = {}
    for line in body.decode().splitlines():
        match = _METRIC_LINE.match(line)
        if match:
            kind, method, route, value = match.groups()
            pair = found.setdefault((method, route), [0.0, 0.0])
            pair[0 if kind == "sum" else 1] = float(value)
    return {key: (pair[0], pair[1]) for key, pair in found.items()}


# -- the load: asyncio keep-alive HTTP/1.1 clients ---------------------------------------------


class Connection:
    """A minimal keep-alive HTTP/1.1 client: one request at a time, answers read whole."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        reader, writer = await self._open()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = 0, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                close = value == b"close"
        body = await self._chunked(reader) if chunked else await reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)


def raw_request(method: str, path: str, key: str, body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Authorization: Bearer {key}"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


RequestMaker = Callable[[int], bytes]
"""Request bytes for a client's n-th request (all clients share one sequence)."""


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


async def _drive(
    port: int,
    make: RequestMaker,
    expected: int,
    clients: int,
    warmup_s: float,
    window_s: float,
    keep_bodies: bool,
) -> Load:
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup_s
    until = measure_from + window_s
    load = Load(window_s)
    counter = iter(range(10**12))

    async def client() -> None:
        connection = Connection(HOST, port)
        try:
            while loop.time() < until:
                raw = make(next(counter))
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


def drive(
    port: int,
    make: RequestMaker,
    expected: int,
    *,
    clients: int,
    warmup_s: float,
    window_s: float,
    keep_bodies: bool = False,
) -> Load:
    """``clients`` connections sending back to back for ``warmup_s`` + ``window_s``."""
    return asyncio.run(_drive(port, make, expected, clients, warmup_s, window_s, keep_bodies))


# -- rows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DbCounters:
    """PostgreSQL's own statistics of the scratch database (pg_stat_database)."""

    sessions: int  # connections opened
    active_ms: float  # time backends spent running statements
    commits: int

    def __sub__(self, other: DbCounters) -> DbCounters:
        return DbCounters(
            self.sessions - other.sessions,
            self.active_ms - other.active_ms,
            self.commits - other.commits,
        )


# PostgreSQL publishes a backend's statistics at most once a second (at the end of a
# transaction); waiting this long before reading them lets the last ones in.
DB_STATS_SETTLE_S = 1.2


def db_counters(sessions: sessionmaker[Session]) -> DbCounters | None:
    """The database's counters now; ``None`` on SQLite or a server without them."""
    with sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            return None
        row = session.execute(
            sa.text(
                "SELECT sessions, active_time, xact_commit FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        ).one_or_none()
    if row is None:
        return None
    return DbCounters(int(row[0]), float(row[1]), int(row[2]))


@dataclass
class Row:
    title: str
    target_rate: float | None  # None: no target (a comparison row)
    load: Load
    server_ms: float  # mean time inside the API (its middleware), from /metrics
    cpu_s: dict[str, float]
    metered_s: float  # wall time the CPU meters spanned (warm-up and window)
    db: DbCounters | None = None  # what PostgreSQL counted during warm-up and window
    alone: Load | None = None  # one client: the latency without queueing
    note: str = ""

    def per_request_ms(self, process: str) -> float:
        """CPU milliseconds ``process`` spent per answer (warm-up and window)."""
        if not self.load.total or process not in self.cpu_s:
            return math.nan
        return self.cpu_s[process] / self.load.total * 1000


Outcome = Row | Skipped


@dataclass
class Bench:
    """What the rows share: the options, the servers' addresses, the CPU sources."""

    args: argparse.Namespace
    database: _stack.Database
    emulator_host: str | None
    work_dir: Path
    sessions: sessionmaker[Session]  # on the scratch database, for its statistics
    topic: str  # this run's own, so an emulator that outlives it holds no stale messages

    def api_env(self, **extra: str) -> dict[str, str]:
        env = {
            **environ_without_settings(),
            **API_ENV,
            "PUBSUB_TOPIC": self.topic,
            "PUBSUB_SUBSCRIPTION": f"{self.topic}-sub",
            "DATABASE_URL": self.database.url,
            **extra,
        }
        if self.emulator_host is not None:
            env["PUBSUB_EMULATOR_HOST"] = self.emulator_host
        return env

    def start_api(self, name: str, tenant: str, **extra_env: str) -> ApiProcess:
        """The API on a free port with one key for ``tenant``, ready; the caller stops it."""
        log_path = self.work_dir / f"api-{name}.log"
        workers = self.args.api_workers
        env = self.api_env(**extra_env)
        return start_api(env, log_path, tenant=tenant, workers=workers, cwd=_stack.REPO_ROOT)

    def cpu_meter(self, server: ApiProcess) -> _cpu.CpuMeter:
        shared = _cpu.shared_sources(self.sessions, self.emulator_host)
        return _cpu.CpuMeter({"API": server.pids, **shared, "clients": _cpu.this_process})

    def measure(
        self,
        server: ApiProcess,
        title: str,
        make: RequestMaker,
        *,
        expected: int,
        route: tuple[str, str],
        target_rate: float | None,
        keep_bodies: bool = False,
    ) -> Row:
        args = self.args
        load_with = partial(drive, server.port, make, expected)
        alone = load_with(clients=1, warmup_s=ALONE_WARMUP_S, window_s=args.alone_seconds)
        meter = self.cpu_meter(server)
        time.sleep(DB_STATS_SETTLE_S)
        db_before = db_counters(self.sessions)
        before = server_seconds(server)
        meter.start()
        busy_before = _cpu.machine_busy_seconds()
        metered_from = time.monotonic()
        load = load_with(
            clients=args.clients,
            warmup_s=args.warmup,
            window_s=args.seconds,
            keep_bodies=keep_bodies,
        )
        cpu = meter.stop()
        metered_s = time.monotonic() - metered_from
        cpu["others"] = _cpu.machine_busy_seconds() - busy_before - sum(cpu.values())
        after = server_seconds(server)
        spent, count = (
            after.get(route, (0.0, 0.0))[i] - before.get(route, (0.0, 0.0))[i] for i in (0, 1)
        )
        # One process's /metrics with several workers: no mean for the whole API then.
        server_ms = spent / count * 1000 if count and server.workers == 1 else math.nan
        time.sleep(DB_STATS_SETTLE_S)
        db_after = db_counters(self.sessions)
        db = db_after - db_before if db_after is not None and db_before is not None else None
        return Row(title, target_rate, load, server_ms, cpu, metered_s, db, alone)


def seed_completed_runs(bench: Bench, server: ApiProcess, count: int) -> list[str]:
    """Runs with a proposal, five reviews and a decision, for the reads to load.

    Submitted through the API, run by a real worker with the offline LLM (no latency),
    which is stopped before any measurement.
    """
    run_ids = []
    for _ in range(count):
        status, raw = http_get(f"{server.base_url}/v1/full-review", server.key, {"idea": IDEA})
        if status != 202:
            raise RuntimeError(f"could not submit a run to read: {status} {raw[:300]!r}")
        run_ids.append(str(json.loads(raw)["run_id"]))
    with contextlib.ExitStack() as stack:
        llm = stack.enter_context(OfflineLLMServer(latency_ms=0))
        env = {
            **environ_without_settings(),
            **_stack.WORKER_ENV,
            **{k: v for k, v in bench.api_env().items() if k.startswith(("PUBSUB_", "DATABASE"))},
            "OPENAI_BASE_URL": llm.base_url,
        }
        worker = start_worker(env, bench.work_dir, "seed", cwd=_stack.REPO_ROOT)
        stack.callback(worker.stop)
        worker.wait_until_ready(READY_TIMEOUT_S)
        deadline = time.monotonic() + SEED_TIMEOUT_S
        pending = list(run_ids)
        while pending and time.monotonic() < deadline:
            worker.check_alive()
            status, raw = http_get(f"{server.base_url}/v1/runs/{pending[0]}", server.key)
            if status == 200 and json.loads(raw)["status"] in ("completed", "failed"):
                pending.pop(0)
            else:
                time.sleep(0.2)
    if pending:
        raise RuntimeError(f"{len(pending)} of {len(run_ids)} runs to read did not finish")
    return run_ids


def measure_pubsub(bench: Bench) -> list[tuple[str, Outcome]]:
    """Health, reads and submissions against the API that publishes to the emulator."""
    titles = (HEALTH_TITLE, READ_TITLE, SUBMIT_TITLE)
    if bench.emulator_host is None:
        return [(title, Skipped("no Pub/Sub emulator")) for title in titles]
    rows: list[tuple[str, Outcome]] = []
    server = bench.start_api("pubsub", tenant="bench")
    measures = (
        partial(measure_health, bench, server, titles[0]),
        partial(measure_reads, bench, server, titles[1]),
        partial(measure_submit, bench, server, titles[2]),
    )
    try:
        for title, measure in zip(titles, measures, strict=True):
            rows.append((title, attempt(measure)))
            _progress(*rows[-1])
    finally:
        server.stop(timeout=15)
    return rows


def measure_health(bench: Bench, server: ApiProcess, title: str) -> Row:
    health = raw_request("GET", "/health", server.key)
    return bench.measure(
        server,
        title,
        lambda n: health,
        expected=200,
        route=("GET", "/health"),
        target_rate=None,
    )


def measure_reads(bench: Bench, server: ApiProcess, title: str) -> Row:
    run_ids = seed_completed_runs(bench, server, bench.args.read_runs)
    requests = [raw_request("GET", f"/v1/runs/{run_id}", server.key) for run_id in run_ids]
    _, sample = http_get(f"{server.base_url}/v1/runs/{run_ids[0]}", server.key)
    row = bench.measure(
        server,
        title,
        lambda n: requests[n % len(requests)],
        expected=200,
        route=("GET", "/v1/runs/{run_id}"),
        target_rate=READ_TARGET,
    )
    row.note = f"{len(run_ids)} runs, {len(sample) / 1024:.1f} KiB each"
    return row


def measure_submit(bench: Bench, server: ApiProcess, title: str) -> Row:
    body = json.dumps({"idea": IDEA}).encode()
    submit = raw_request("POST", "/v1/full-review", server.key, body)
    row = bench.measure(
        server,
        title,
        lambda n: submit,
        expected=202,
        route=("POST", "/v1/full-review"),
        target_rate=SUBMIT_TARGET,
        keep_bodies=True,
    )
    not_enqueued = sum(1 for raw in row.load.bodies if not json.loads(raw).get("enqueued"))
    row.load.bodies.clear()
    if not_enqueued:
        row.note = f"{not_enqueued} answered enqueued=false"
    return row


def measure_mock(bench: Bench) -> list[tuple[str, Outcome]]:
    """Submissions against an API whose broker only records (no publish): Pub/Sub's share.

    Another tenant, so its cap check counts its own runs only, like the first one did.
    """
    title = MOCK_TITLE
    server = bench.start_api("mock", tenant="bench-mock", PUBSUB_USE_MOCK="true")
    try:
        row = attempt(partial(measure_submit, bench, server, title))
    finally:
        server.stop(timeout=15)
    _progress(title, row)
    return [(title, row)]


# -- reporting ----------------------------------------------------------------------------------


def _progress(title: str, outcome: Outcome) -> None:
    detail = str(outcome)[:120] if isinstance(outcome, Skipped) else f"{outcome.load.rate:.0f}/s"
    print(f"  ... {title}: {detail}", flush=True)


def print_table(rows: list[tuple[str, Outcome]], clients: int, window_s: float) -> None:
    print(f"\n{clients} concurrent clients, keep-alive, {window_s:g} s measured per row (ms)")
    print(
        f"  {'':42}{'req/s':>8}{'p50':>8}{'p99':>8}{'max':>8}{'in API':>8}{'errors':>8}"
        f"{'alone':>8}  target"
    )
    for title, outcome in rows:
        if isinstance(outcome, Skipped):
            print(f"  {title:42}{outcome}")
            continue
        load = outcome.load
        errors = sum(load.errors.values())
        verdict = ""
        if outcome.target_rate is not None:
            met = load.rate >= outcome.target_rate and load.percentile(0.99) < P99_TARGET_MS
            verdict = (
                f"[{'PASS' if met else 'MISS'}] >= {outcome.target_rate:,.0f}/s, "
                f"p99 < {P99_TARGET_MS:.0f} ms"
            )
        slowest = max(load.latencies_ms, default=math.nan)
        alone = outcome.alone.percentile(0.5) if outcome.alone is not None else math.nan
        print(
            f"  {title:42}{_f(load.rate, ',.0f', 8)}{_f(load.percentile(0.5), '.1f', 8)}"
            f"{_f(load.percentile(0.99), '.1f', 8)}{_f(slowest, '.1f', 8)}"
            f"{_f(outcome.server_ms, '.1f', 8)}{errors:8d}{_f(alone, '.1f', 8)}  {verdict}"
        )
        if outcome.note or load.errors:
            details = [outcome.note] if outcome.note else []
            details += [f"{count} x {what}" for what, count in load.errors.most_common(3)]
            print(f"  {'':4}({'; '.join(details)})")
    print(
        "  (in API: mean time inside the app per request, from its /metrics: routing, handler,\n"
        "   thread-pool wait; alone: p50 with a single client, the latency without queueing)"
    )


CPU_COLUMNS = ("API", "PostgreSQL", "emulator", "clients")


def print_cpu(rows: list[tuple[str, Outcome]]) -> None:
    """CPU per request of each process, and how busy the machine was (others included)."""
    measured = [row for _, row in rows if isinstance(row, Row) and row.load.total]
    if not measured:
        return
    cpus = os.cpu_count() or 1
    print(f"\nCPU per request (ms, from /proc, warm-up included) and use of the {cpus} CPUs")
    print(
        f"  {'':42}"
        + "".join(f"{name:>11}" for name in CPU_COLUMNS)
        + f"{'ours':>8}{'ours %':>8}{'others %':>10}"
    )
    for row in measured:
        cells = "".join(_f(row.per_request_ms(name), ".2f", 11) for name in CPU_COLUMNS)
        ours = sum(row.cpu_s.get(name, 0.0) for name in CPU_COLUMNS)
        capacity = row.metered_s * cpus
        others = row.cpu_s.get("others", math.nan)
        print(
            f"  {row.title:42}{cells}{ours / row.load.total * 1000:8.2f}"
            f"{ours / capacity * 100:7.0f}%{_f(others / capacity * 100, '.0f', 9)}%"
        )
    print(
        "  (PostgreSQL: the backends of the scratch database alive at either end (connections\n"
        "   opened and closed in between are missed: see below); clients: this process;\n"
        "   others %: the rest of the machine's work, e.g. other test runs)"
    )


def print_database(rows: list[tuple[str, Outcome]]) -> None:
    """What PostgreSQL itself counted: a new connection per request would show here."""
    measured = [row for _, row in rows if isinstance(row, Row) and row.db and row.load.total]
    if not measured:
        return
    print("\nPostgreSQL per request (its pg_stat_database counters, warm-up included)")
    print(f"  {'':42}{'commits':>10}{'active ms':>11}{'new conns/s':>13}")
    for row in measured:
        assert row.db is not None
        print(
            f"  {row.title:42}{row.db.commits / row.load.total:10.2f}"
            f"{row.db.active_ms / row.load.total:11.2f}{row.db.sessions / row.metered_s:13.1f}"
        )
    print(
        "  (active ms: time backends spent running statements; new conns/s: connections the\n"
        "   API opened, e.g. its pool's overflow past DB_POOL_SIZE, closed again when returned)"
    )


def print_shares(rows: list[tuple[str, Outcome]]) -> None:
    """A submission's parts: by difference of single-client latency (what one request
    waits for) and of API CPU per request (what caps the rate on these cores)."""
    found = {title: row for title, row in rows if isinstance(row, Row) and row.load.latencies_ms}
    health = found.get(HEALTH_TITLE)
    pubsub = found.get(SUBMIT_TITLE)
    mock = found.get(MOCK_TITLE)
    if health is None or pubsub is None or mock is None:
        return

    def alone(row: Row) -> float:
        return row.alone.percentile(0.5) if row.alone is not None else math.nan

    def api_cpu(row: Row) -> float:
        return row.per_request_ms("API")

    print("\nWhere a submission's time goes (ms; differences between rows)")
    print(f"  {'':44}{'latency alone':>14}{'API CPU':>10}")
    parts = (
        ("framework floor (GET /health)", health, None),
        ("+ validation, database (mock - health)", mock, health),
        ("+ publish to Pub/Sub (emulator - mock)", pubsub, mock),
    )
    for name, row, base in parts:
        latency = alone(row) - (alone(base) if base else 0.0)
        cpu = api_cpu(row) - (api_cpu(base) if base else 0.0)
        print(f"  {name:44}{_f(latency, '.1f', 14)}{_f(cpu, '.2f', 10)}")
    emulator = pubsub.per_request_ms("emulator")
    print(
        f"  (plus {emulator:.2f} ms of the emulator's CPU per publish, on the same cores;\n"
        f"   {mock.load.rate:,.0f} submissions/s without the publish, "
        f"{pubsub.load.rate:,.0f}/s with it)"
    )


# -- running ------------------------------------------------------------------------------------


def _delete_pubsub_resources(bench: Bench) -> None:
    env = {key: value for key, value in bench.api_env().items() if key.isupper()}
    overrides = {key: value for key, value in env.items() if key.lower() in Settings.model_fields}
    attempt_cleanup(
        "delete the Pub/Sub resources",
        lambda: _stack.Target(overrides, submitters=1).close(delete_resources=True),
    )


def run(args: argparse.Namespace) -> list[tuple[str, Outcome]]:
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-api-")))
        configured_emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        emulator = stack.enter_context(pubsub_emulator(configured_emulator))
        database = stack.enter_context(_stack.scratch_database(args.database_url, work_dir))
        engine = create_engine_from_url(database.url, pool_size=1, max_overflow=0)
        stack.callback(engine.dispose)
        sessions = session_factory(engine)
        print("Servers:")
        print(f"  {'database':10}{database.description}")
        print(f"  {'Pub/Sub':10}{emulator.description}")
        print(
            f"  {'API':10}uvicorn, {args.api_workers} process(es), pool and thread defaults "
            "(DB_POOL_SIZE 5 + DB_MAX_OVERFLOW 10, 40 threads), rate limits opened wide"
        )
        sys.stdout.flush()
        bench = Bench(
            args, database, emulator.host, work_dir, sessions, f"bench-api-{secrets.token_hex(4)}"
        )
        if configured_emulator and emulator.host is not None:
            # The emulator outlives this run: delete its topics and subscriptions at the end.
            stack.callback(_delete_pubsub_resources, bench)
        return measure_pubsub(bench) + measure_mock(bench)
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
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
    add("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    quick = args.quick
    args.seconds = args.seconds if args.seconds is not None else (3.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 2.0)
    args.read_runs = args.read_runs if args.read_runs is not None else (5 if quick else 20)
    if args.alone_seconds is None:
        args.alone_seconds = 1.0 if quick else 2.0
    if min(args.clients, args.seconds, args.alone_seconds, args.read_runs) <= 0 or args.warmup < 0:
        parser.error("--clients, --seconds, --alone-seconds and --read-runs must be positive")
    if args.api_workers < 1:
        parser.error("--api-workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"bench.api: {os.cpu_count()} CPUs, load average {load}\n"
        f"  targets: {SUBMIT_TARGET:.0f} submissions/s and {READ_TARGET:,.0f} reads/s, "
        f"p99 < {P99_TARGET_MS:.0f} ms, at {args.clients} clients"
    )
    started = time.monotonic()
    try:
        with _stack.interrupt_once("the API, worker, emulator and database"):
            rows = run(args)
    except KeyboardInterrupt:
        print("cleaned up", file=sys.stderr)
        return 130
    print_table(rows, args.clients, args.seconds)
    print_cpu(rows)
    print_database(rows)
    print_shares(rows)
    print(f"\n(total {time.monotonic() - started:.0f} s; the targets are informative, exit 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
