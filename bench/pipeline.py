"""End-to-end runs per minute and run latency of the worker pipeline, next to the earlier
system's shape (one job reviewing with every persona in turn).

Why: a run is expand -> five reviews -> aggregate, each a Dramatiq message over Pub/Sub
with its state in PostgreSQL. With an LLM that takes L per call the critical path is
2·L (expand + the slowest review; aggregate calls no LLM) against 6·L when the personas
review one after another. This measures how much of that the real system keeps under
load (N runs submitted at once) and what one run pays on top of its LLM calls when the
system is idle (the per-run overhead, target < 150 ms).

    .venv/bin/python -m bench.pipeline [--runs 100] [--latency-ms 200] [--workers 1x8 1x32 2x16]
    .venv/bin/python -m bench.pipeline --quick      # 10 runs, 1 process x 8 threads
    .venv/bin/python -m bench.pipeline --council plain debate chair both --no-baseline

``--council`` adds the council's stages (issue 18): a debate round puts every persona's
second review on the critical path (3·L), a chair one more call after the decision (3·L;
both: 4·L). Each council gets its own rows, so their lone-run latencies sit side by side,
also in units of L.

Everything runs here: a scratch PostgreSQL database on 127.0.0.1:5432 (SQLite when that
is unreachable, said so at the top), Google's Pub/Sub emulator (or PUBSUB_EMULATOR_HOST),
the offline LLM server and real ``dramatiq consensus_engine.actors`` processes. All of it
is stopped or dropped at the end, Ctrl-C included. It exits 0 whether the target is met
or not: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from bench import _harness
from bench._harness import Skipped, attempt, percentile, print_table
from bench._harness import fmt as _f
from consensus_engine.db.models import Run
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.devtools.stack import SAMPLE_IDEA, Stack, queue_env
from consensus_engine.domain.aggregation import aggregate
from consensus_engine.domain.runs import RunStatus
from consensus_engine.llm import LLMClient
from consensus_engine.pipeline.config import expand_choice, personas_from_settings, review_choice
from consensus_engine.pipeline.inline import expand_idea, review_proposal
from consensus_engine.settings import load_settings

TARGET_OVERHEAD_MS = 150.0
TARGET_WORKER_CPU_MS = 50.0  # worker CPU per loaded run (7 messages, 5 personas)
TARGET_THROUGHPUT_RATIO = 1.0  # pipeline runs/min over the sequential baseline's, same threads
PIPELINE_LLM_CALLS = 2  # on the critical path: expand, then the slowest review
COUNCILS: dict[str, tuple[int, dict[str, str]]] = {
    "plain": (PIPELINE_LLM_CALLS, {}),
    "debate": (3, {"REVIEW_ROUNDS": "2"}),  # + the slowest second-round review
    "chair": (3, {"CHAIR_MODEL": "gpt-4.1-mini"}),  # + the chair, after the decision
    "both": (4, {"REVIEW_ROUNDS": "2", "CHAIR_MODEL": "gpt-4.1-mini"}),
}
"""Each council: the LLM calls on a run's critical path, and the settings that ask for it."""
SEQUENTIAL_LLM_CALLS = 6  # expand, then five reviews in turn
READY_TIMEOUT_S = 90.0
UNLOADED_POLL_S = 0.02  # how often to look for the end of a lone run (wall time only)
LOADED_POLL_S = 0.25
SEGMENTS = (
    ("submit->expand", "run queued -> expand claimed: commit, publish, delivery, claim"),
    ("expand-LLM", "expand claimed -> settled, less its LLM call: claim + settle transactions"),
    ("->review", "expand settled -> last-ending review claimed: 5 publishes, delivery, claim"),
    ("review-LLM", "that review claimed -> settled, less its LLM call"),
    ("->aggregate", "last review settled -> aggregate claimed: barrier, publish, delivery"),
    ("aggregate", "aggregate claimed -> run completed"),
    ("LLM>L", "the two LLM calls' measured time beyond 2·L: HTTP, SDK, parsing"),
)
EXTRA_SEGMENTS = (  # not on the critical path; they explain two of the segments above
    ("review spread", "first -> last review claimed: how parallel the fan-out began"),
    (
        "min review-LLM",
        "the quickest review's: the gap is settling behind its siblings (row lock, GIL)",
    ),
)

log = logging.getLogger("bench.pipeline")
INTERRUPTED = threading.Event()


@dataclass(frozen=True)
class Shape:
    """A worker configuration: ``processes`` Dramatiq processes of ``threads`` threads."""

    processes: int
    threads: int

    @property
    def total(self) -> int:
        return self.processes * self.threads

    def __str__(self) -> str:
        return f"{self.processes} proc x {self.threads} threads"


@dataclass
class Row:
    """Every figure of one configuration (or of the sequential baseline)."""

    kind: str  # "pipeline" or "sequential"
    threads: int
    critical_ms: float
    runs: int
    loaded_ms: list[float]  # latencies of the runs that completed
    failed: int
    span_s: float  # first submit -> last completion
    unloaded_ms: list[float]
    llm_calls: int | None = None
    llm_peak: int | None = None
    segments: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds in the loaded phase
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds of each phase
    council: str = "plain"  # see COUNCILS

    @property
    def runs_per_minute(self) -> float:
        return len(self.loaded_ms) / self.span_s * 60 if self.span_s > 0 else math.nan

    def loaded(self, fraction: float) -> float:
        return percentile(self.loaded_ms, fraction)

    @property
    def unloaded_p50(self) -> float:
        return percentile(self.unloaded_ms, 0.5)

    @property
    def overhead_ms(self) -> float:
        return self.unloaded_p50 - self.critical_ms


Outcome = Row | Skipped


class Phases:
    """Wall time of a row's phases, for the progress line: start, lone runs, loaded, stop."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.since = time.monotonic()

    def mark(self, name: str) -> None:
        """``name`` took the time since the last mark (or since ``since`` was reset)."""
        now = time.monotonic()
        self.spent[name] = self.spent.get(name, 0.0) + now - self.since
        self.since = now


def latency_ms(run: Run) -> float | None:
    """Queued -> completed, for a run that completed."""
    if run.status is not RunStatus.COMPLETED or not run.completed_at or not run.queued_at:
        return None
    return (run.completed_at - run.queued_at).total_seconds() * 1000


def _ideas(count: int, label: str) -> list[str]:
    return [f"{SAMPLE_IDEA} ({label} {index})" for index in range(count)]


def measure_pipeline(
    args: argparse.Namespace,
    servers: _harness.Servers,
    llm: OfflineLLMServer,
    shape: Shape,
    index: int,
    council: str = "plain",
) -> Row:
    """Start the workers, time lone runs, then N runs at once; the workers stop after."""
    topic = f"bench{index}{os.getpid()}-jobs"
    calls, council_env = COUNCILS[council]
    overrides = {
        **_harness.WORKER_ENV,
        **queue_env(servers.database_url, servers.emulator.host, "bench-pipeline", topic),
        "OPENAI_BASE_URL": llm.base_url,
        "WORKER_PROCESSES": str(shape.processes),
        "WORKER_MAX_CONCURRENCY": str(shape.threads),
        **council_env,
    }
    phases = Phases()
    target = Stack(overrides, servers.work_dir, pool=max(2, args.submitters))
    try:
        target.broker.provision()  # topics exist before the clock starts
        worker = target.start_worker(
            processes=shape.processes,
            threads=shape.threads,
            name=f"{index}-{shape.processes}x{shape.threads}",
            ready_timeout=READY_TIMEOUT_S,
        )
        phases.mark("start")
        wait = partial(target.wait_for_runs, timeout=args.timeout, workers=[worker])

        def one_at_a_time(ideas: list[str]) -> list[Run]:
            run_ids = []
            for idea in ideas:
                run_ids.append(target.submit(idea))
                if not wait(run_ids[-1:], poll_s=UNLOADED_POLL_S):
                    raise RuntimeError(
                        f"a lone run did not end in {args.timeout:.0f} s; worker log:\n"
                        + worker.tail(1500)
                    )
            return target.runs(run_ids)

        one_at_a_time(_ideas(args.warmup, "warm-up"))  # streams, pools, first imports
        unloaded = one_at_a_time(_ideas(args.unloaded, "unloaded"))
        phases.mark("lone runs")

        sources = _harness.shared_sources(target.sessions, servers.emulator.host)
        meter = _harness.CpuMeter(
            {"workers": worker.pids, **sources, "this process": _harness.this_process}
        )
        llm.reset()
        meter.start()
        # All at once, as concurrent API requests would (``submitters`` at a time).
        with ThreadPoolExecutor(args.submitters, thread_name_prefix="submit") as pool:
            run_ids = list(pool.map(target.submit, _ideas(args.runs, "loaded")))
        wait(run_ids, poll_s=LOADED_POLL_S)
        cpu_s = meter.stop()
        phases.mark("loaded")
        stats = llm.stats()
        loaded = target.runs(run_ids)
    finally:
        phases.since = time.monotonic()
        # Let in-flight steps finish, but after Ctrl-C (when the emulator may be gone with the
        # terminal's signal and the worker cannot drain) kill it sooner.
        for started in target.workers:
            started.stop(timeout=5 if INTERRUPTED.is_set() else 20)
        target.close(delete_resources=servers.shared_emulator)
        phases.mark("stop")

    completed = [run for run in loaded if latency_ms(run) is not None]
    ends = [run.completed_at for run in completed if run.completed_at]
    starts = [run.queued_at for run in loaded if run.queued_at]
    return Row(
        kind="pipeline",
        threads=shape.total,
        critical_ms=calls * args.latency_ms,
        runs=args.runs,
        loaded_ms=[ms for ms in map(latency_ms, loaded) if ms is not None],
        failed=args.runs - len(completed),
        span_s=(max(ends) - min(starts)).total_seconds() if ends else math.nan,
        unloaded_ms=[ms for ms in map(latency_ms, unloaded) if ms is not None],
        llm_calls=int(stats.get("total", 0)),
        llm_peak=int(stats.get("max_in_flight", 0)),
        # The segments follow a plain run's critical path.
        segments=_segments(unloaded, args.latency_ms) if council == "plain" else {},
        cpu_s=cpu_s,
        phases=phases.spent,
        council=council,
    )


def _segments(runs: list[Run], latency_ms: float) -> dict[str, list[float]]:
    """Split each lone run's time along its critical path (see SEGMENTS)."""
    out: dict[str, list[float]] = {name: [] for name, _ in SEGMENTS + EXTRA_SEGMENTS}

    def ms(later: datetime | None, earlier: datetime | None) -> float:
        assert later is not None and earlier is not None
        return float((later - earlier).total_seconds() * 1000)

    for run in runs:
        llm: Counter[str] = Counter()  # each step's time in LLM calls
        for call in run.llm_calls:
            llm[call.step] += call.latency_ms
        steps = {step.step_name: step for step in run.steps}
        expand, agg = steps.get("expand"), steps.get("aggregate")
        reviews = [step for name, step in steps.items() if name.startswith("review_")]
        if run.completed_at is None or any(
            s is None or s.started_at is None or s.completed_at is None
            for s in (expand, agg, *reviews)
        ):
            continue
        assert expand is not None and agg is not None
        last = max(reviews, key=lambda s: ms(s.completed_at, run.queued_at))
        out["submit->expand"].append(ms(expand.started_at, run.queued_at))
        out["expand-LLM"].append(ms(expand.completed_at, expand.started_at) - llm["expand"])
        out["->review"].append(ms(last.started_at, expand.completed_at))
        review_llm = ms(last.completed_at, last.started_at) - llm[last.step_name]
        out["review-LLM"].append(review_llm)
        out["->aggregate"].append(ms(agg.started_at, last.completed_at))
        out["aggregate"].append(ms(run.completed_at, agg.started_at))
        out["LLM>L"].append(llm["expand"] + llm[last.step_name] - PIPELINE_LLM_CALLS * latency_ms)
        starts = [s.started_at for s in reviews if s.started_at is not None]
        out["review spread"].append(ms(max(starts), min(starts)))
        quickest = min(ms(s.completed_at, s.started_at) - llm[s.step_name] for s in reviews)
        out["min review-LLM"].append(quickest)
    return out


def measure_sequential(
    args: argparse.Namespace, llm_server: OfflineLLMServer, threads: int, unloaded: bool
) -> Row:
    """The baseline on a pool of ``threads``: each run expands, then reviews with the five
    personas in turn, then aggregates; lone runs only when ``unloaded``.

    It runs in this process: the offline LLM server shares its GIL, which measured no
    different from a process of its own (the LLM server's work is small next to L).
    """
    overrides = {**_harness.WORKER_ENV, "OPENAI_BASE_URL": llm_server.base_url}
    settings = load_settings(**{key.lower(): value for key, value in overrides.items()})
    llm = LLMClient.from_settings(settings)
    personas = personas_from_settings(settings)
    expand, review = expand_choice(settings), review_choice(settings)
    ours = _harness.CpuMeter({"this process": _harness.this_process})
    phases = Phases()

    def one(idea: str) -> float:
        proposal, _ = expand_idea(llm, idea, None, expand)
        reviews = [review_proposal(llm, persona, proposal, review)[0] for persona in personas]
        aggregate(
            reviews,
            personas,
            approve_threshold=settings.approve_threshold,
            revise_threshold=settings.revise_threshold,
        )
        return time.perf_counter()

    try:
        for idea in _ideas(args.warmup if unloaded else 1, "warm-up"):
            one(idea)
        lone = []
        for idea in _ideas(args.unloaded if unloaded else 0, "unloaded"):
            started = time.perf_counter()
            lone.append((one(idea) - started) * 1000)
        phases.mark("lone runs")
        llm_server.reset()
        ours.start()
        ends: list[float] = []
        with ThreadPoolExecutor(threads, thread_name_prefix="sequential") as pool:
            started = time.perf_counter()
            futures = [pool.submit(one, idea) for idea in _ideas(args.runs, "loaded")]
            for future in futures:
                try:
                    ends.append(future.result())
                except Exception as error:
                    log.warning("sequential run failed: %r", error)
    finally:
        llm.close()
    cpu_s = ours.stop()
    phases.mark("loaded")
    stats = llm_server.stats()
    return Row(
        kind="sequential",
        threads=threads,
        critical_ms=SEQUENTIAL_LLM_CALLS * args.latency_ms,
        runs=args.runs,
        loaded_ms=[(end - started) * 1000 for end in ends],
        failed=args.runs - len(ends),
        span_s=(max(ends) - started) if ends else math.nan,
        unloaded_ms=lone,
        llm_calls=int(stats.get("total", 0)),
        llm_peak=int(stats.get("max_in_flight", 0)),
        cpu_s=cpu_s,
        phases=phases.spent,
    )


def print_loaded(rows: list[tuple[str, Outcome]], runs: int) -> None:
    baselines = {
        row.threads: row for _, row in rows if isinstance(row, Row) and row.kind == "sequential"
    }

    def cells(row: Row) -> str:
        base = baselines.get(row.threads) if row.kind == "pipeline" else None
        thr_ratio = row.runs_per_minute / base.runs_per_minute if base else math.nan
        p50_ratio = row.loaded(0.5) / base.loaded(0.5) if base else math.nan
        return (
            f"{row.threads:8d}{_f(row.runs_per_minute, ',.0f', 10)}"
            f"{_f(row.loaded(0.5) / 1000, '.2f', 8)}{_f(row.loaded(0.95) / 1000, '.2f', 8)}"
            f"{_f(row.loaded(0.99) / 1000, '.2f', 8)}{row.failed:8d}"
            f"{row.llm_calls or 0:11d}{row.llm_peak or 0:10d}"
            f"{_f(thr_ratio, '.2f', 11)}{_f(p50_ratio, '.2f', 11)}"
        )

    print_table(
        f"\nLoaded: {runs} runs submitted at once (latency s; runs/min: first submit -> last end)",
        f"{'threads':>8}{'runs/min':>10}{'p50':>8}{'p95':>8}{'p99':>8}{'not ok':>8}"
        f"{'LLM calls':>11}{'LLM peak':>10}{'x seq thr':>11}{'x seq p50':>11}",
        rows,
        cells,
        width=40,
        notes="  (not ok: failed or unfinished at --timeout; x seq: against the sequential "
        "baseline with the same total threads, p50 below 1 is faster)",
    )


def print_unloaded(rows: list[tuple[str, Outcome]], samples: int) -> None:
    def cells(row: Row) -> str:
        verdict = ""
        if row.kind == "pipeline":
            passed = row.overhead_ms < TARGET_OVERHEAD_MS
            verdict = f"[{'PASS' if passed else 'MISS'}] < {TARGET_OVERHEAD_MS:.0f} ms"
        return (
            f"{row.critical_ms:10.0f}{_f(row.unloaded_p50, '.0f', 8)}"
            f"{_f(min(row.unloaded_ms), '.0f', 8)}{_f(max(row.unloaded_ms), '.0f', 8)}"
            f"{_f(row.overhead_ms, '.0f', 10)}  {verdict}"
        )

    print_table(
        f"\nUnloaded: {samples} runs one at a time, each waited for "
        "(ms; overhead = p50 - critical)",
        f"{'critical':>10}{'p50':>8}{'min':>8}{'max':>8}{'overhead':>10}  target",
        [(title, row) for title, row in rows if isinstance(row, Skipped) or row.unloaded_ms],
        cells,
        width=40,
    )


def print_segments(rows: list[tuple[str, Outcome]]) -> None:
    legend = SEGMENTS + EXTRA_SEGMENTS
    print_table(
        "\nWhere a lone pipeline run's overhead goes "
        "(p50 of each segment, ms; database timestamps)",
        "".join(f"{name:>16}" for name, _ in legend),
        [(title, row) for title, row in rows if isinstance(row, Row) and row.segments],
        lambda row: "".join(
            _f(percentile(row.segments[name], 0.5), ".1f", 16) for name, _ in legend
        ),
        width=40,
        notes="\n".join(f"    {name:15}{meaning}" for name, meaning in legend),
    )


CPU_COLUMNS = ("workers", "PostgreSQL", "emulator", "this process")


def print_cpu(rows: list[tuple[str, Outcome]]) -> None:
    """Whether the box, not the design, set the pace: CPU per run and how busy the CPUs were."""
    cpus = os.cpu_count() or 1

    def cells(row: Row) -> str:
        per_run = [row.cpu_s.get(name, math.nan) / row.runs * 1000 for name in CPU_COLUMNS]
        total = sum(row.cpu_s.values())
        wall = row.phases.get("loaded", math.nan)
        busy = total / (wall * cpus) * 100 if wall > 0 else math.nan
        ms = "".join(_f(value, ".0f", 17) for value in per_run)
        return f"{ms}{total / row.runs * 1000:8.0f}{_f(busy, '.0f', 6)}%"

    print_table(
        f"\nCPU per loaded run (ms, from /proc; busy = all of it / (loaded wall x {cpus} CPUs); "
        "'this process': offline LLM, submitting, baseline)",
        "".join(f"{name:>17}" for name in CPU_COLUMNS) + f"{'total':>8}{'busy':>7}",
        [(title, row) for title, row in rows if isinstance(row, Row) and row.cpu_s],
        cells,
        width=40,
        notes="  (PostgreSQL: the backends of this database only; other load on the box is not "
        "counted)",
    )


def _measured(title: str, measure: Callable[[], Row]) -> tuple[str, Outcome]:
    """One row (an error fails that row only), with a line saying where its time went."""
    started = time.monotonic()
    outcome = attempt(measure)
    if isinstance(outcome, Skipped):
        detail = f" ({str(outcome)[:100]})"
    else:
        detail = " (" + ", ".join(f"{k} {v:.0f} s" for k, v in outcome.phases.items()) + ")"
    print(f"  ... {title}: {time.monotonic() - started:.0f} s{detail}", flush=True)
    return title, outcome


def _shape(text: str) -> Shape:
    match = re.fullmatch(r"0*([1-9][0-9]*)x0*([1-9][0-9]*)", text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected PROCESSESxTHREADS, e.g. 2x16, not {text!r}")
    return Shape(int(match[1]), int(match[2]))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _harness.parser("pipeline", __doc__)
    add = parser.add_argument
    add("--runs", type=int, default=None, help="runs submitted at once per row (default 100)")
    add("--latency-ms", type=float, default=200.0, help="offline LLM latency per call")
    add(
        "--workers",
        type=_shape,
        nargs="+",
        default=None,
        metavar="PxT",
        help="worker configurations, processes x threads (default 1x8 1x32 2x16)",
    )
    add("--unloaded", type=int, default=None, help="lone runs for the overhead (default 10)")
    add("--warmup", type=int, default=1, help="lone runs first, not recorded")
    add("--submitters", type=int, default=8, help="threads submitting the loaded runs")
    add("--timeout", type=float, default=300.0, help="seconds a row's runs may take")
    add("--no-baseline", action="store_true", help="skip the sequential baseline rows")
    add(
        "--council",
        nargs="+",
        choices=sorted(COUNCILS),
        default=["plain"],
        help="councils to measure, each with its own rows (default plain)",
    )
    add("--quick", action="store_true", help="sanity run: 10 runs, 1x8, 3 lone runs")
    add("--database-url", default=_harness.DATABASE_SERVER)
    args = parser.parse_args(argv)
    shapes = ([Shape(1, 8)], [Shape(1, 8), Shape(1, 32), Shape(2, 16)])  # --quick, default
    _harness.quick_defaults(args, runs=(10, 100), unloaded=(3, 10), workers=shapes)
    if args.runs < 1 or args.unloaded < 1 or args.warmup < 0 or args.latency_ms < 0:
        parser.error("--runs and --unloaded must be positive, --warmup and --latency-ms >= 0")
    return args


def run(args: argparse.Namespace) -> list[tuple[str, Outcome]]:
    rows: list[tuple[str, Outcome]] = []
    with (
        _harness.servers("pipeline", args.database_url) as servers,
        OfflineLLMServer(latency_ms=args.latency_ms) as llm,
    ):
        where = f"offline server {llm.base_url} in this process"
        print(f"  {'LLM':10}{where}, {args.latency_ms:.0f} ms a call", flush=True)
        configurations = [(s, c) for s in args.workers for c in args.council]
        for index, (shape, council) in enumerate(configurations):
            title = f"pipeline, {shape}" + ("" if council == "plain" else f", {council}")
            measure = partial(measure_pipeline, args, servers, llm, shape, index, council)
            if servers.emulator.host is None:
                rows.append((title, Skipped(servers.emulator.description)))
            else:
                rows.append(_measured(title, measure))
        if not args.no_baseline:
            for position, threads in enumerate(sorted({shape.total for shape in args.workers})):
                title = f"sequential personas, {threads} threads"
                measure = partial(measure_sequential, args, llm, threads, position == 0)
                rows.append(_measured(title, measure))
    return rows


def print_targets(rows: list[tuple[str, Outcome]]) -> None:
    """The issue's figures, each beside its target, for every pipeline row of this run."""
    measured = [(title, row) for title, row in rows if isinstance(row, Row)]
    baselines = {row.threads: row for _, row in measured if row.kind == "sequential"}

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    lines = []
    for title, row in measured:
        if row.kind != "pipeline" or row.council != "plain":  # the targets are a plain run's
            continue
        cpu = row.cpu_s.get("workers", math.nan) / row.runs * 1000
        lines.append(
            f"  {title:40}worker CPU per loaded run {_f(cpu, '.0f', 5)} ms"
            f"   target <= {TARGET_WORKER_CPU_MS:.0f} ms  [{verdict(cpu <= TARGET_WORKER_CPU_MS)}]"
        )
        lines.append(
            f"  {'':40}lone run over 2*L        {_f(row.overhead_ms, '.0f', 5)} ms"
            f"   target <= {TARGET_OVERHEAD_MS:.0f} ms  "
            f"[{verdict(row.overhead_ms <= TARGET_OVERHEAD_MS)}]"
        )
        base = baselines.get(row.threads)
        ratio = row.runs_per_minute / base.runs_per_minute if base else math.nan
        shown = "no baseline" if base is None else verdict(ratio >= TARGET_THROUGHPUT_RATIO)
        lines.append(
            f"  {'':40}runs/min x sequential    {_f(ratio, '.2f', 5)} x "
            f"   target >= {TARGET_THROUGHPUT_RATIO:.1f}x    [{shown}]"
        )
    if lines:
        print("\nTargets (issue 16; figures from this run)")
        print("\n".join(lines))


def print_councils(rows: list[tuple[str, Outcome]], latency_ms: float) -> None:
    """A lone run's latency in units of one LLM call, each council beside the plain run of
    the same workers: what a second round and a chair add to the critical path."""
    measured = [row for _, row in rows if isinstance(row, Row) and row.kind == "pipeline"]
    plain = {row.threads: row for row in measured if row.council == "plain"}

    def cells(row: Row) -> str:
        base = plain.get(row.threads)
        added = (row.unloaded_p50 - base.unloaded_p50) / latency_ms if base else math.nan
        return (
            f"{row.critical_ms / latency_ms:10.0f}{_f(row.unloaded_p50 / latency_ms, '.2f', 10)}"
            f"{_f(added, '.2f', 12)}{_f(row.overhead_ms, '.0f', 12)}"
        )

    if len({row.council for row in measured}) < 2:
        return
    print_table(
        f"\nCouncils: a lone run in units of L = {latency_ms:.0f} ms (p50 of the lone runs)",
        f"{'LLM calls':>10}{'p50 / L':>10}{'vs plain':>12}{'overhead':>12}",
        [(title, row) for title, row in rows if isinstance(row, Row) and row.kind == "pipeline"],
        cells,
        width=40,
        notes="  (LLM calls: on the critical path; vs plain: the p50 added to the plain run of "
        "the same workers, in L; overhead: p50 - calls x L, ms)",
    )


def report(args: argparse.Namespace, rows: list[tuple[str, Outcome]]) -> None:
    print_councils(rows, args.latency_ms)
    print_targets(rows)
    print_loaded(rows, args.runs)
    print_unloaded(rows, args.unloaded)
    print_segments(rows)
    print_cpu(rows)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    shapes = ", ".join(str(shape) for shape in args.workers)
    baseline = "none" if args.no_baseline else "sequential personas, same total threads"
    details = (
        f"\n  {args.runs} runs at once per row ({args.submitters} submitting threads), offline "
        f"LLM {args.latency_ms:.0f} ms a call, {args.unloaded} lone runs for the overhead "
        f"(after {args.warmup} warm-up)\n  workers: {shapes}; baseline: {baseline}"
    )
    return _harness.main(
        "pipeline",
        details,
        partial(run, args),
        partial(report, args),
        stopping="workers, emulator and database",
        footer="the target is informative, exit status is 0",
        on_interrupt=INTERRUPTED.set,
    )


if __name__ == "__main__":
    sys.exit(main())
