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

Everything runs here: a scratch PostgreSQL database on 127.0.0.1:5432 (SQLite when that
is unreachable, said so at the top), Google's Pub/Sub emulator (or PUBSUB_EMULATOR_HOST),
the offline LLM server and real ``dramatiq consensus_engine.actors`` processes. All of it
is stopped or dropped at the end, Ctrl-C included. It exits 0 whether the target is met
or not: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from bench import _cpu, _stack
from consensus_engine.devtools.emulator import pubsub_emulator
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.devtools.results import Skipped, attempt, percentile
from consensus_engine.devtools.results import fmt as _f
from consensus_engine.devtools.worker import WorkerProcess, start_worker
from consensus_engine.domain.aggregation import aggregate
from consensus_engine.llm import LLMClient
from consensus_engine.pipeline.config import expand_choice, personas_from_settings, review_choice
from consensus_engine.pipeline.inline import expand_idea, review_proposal
from consensus_engine.settings import load_settings

IDEA = "Let people book a bike repair slot online and get a text when it is ready."
TARGET_OVERHEAD_MS = 150.0
PIPELINE_LLM_CALLS = 2  # on the critical path: expand, then the slowest review
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


# -- results ---------------------------------------------------------------------------------


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


DEFAULT_SHAPES = [Shape(1, 8), Shape(1, 32), Shape(2, 16)]
QUICK_SHAPES = [Shape(1, 8)]


@dataclass
class Row:
    """Every figure of one configuration (or of the sequential baseline)."""

    title: str
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
        self._last = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.spent[name] = self.spent.get(name, 0.0) + now - self._last
        self._last = now

    def timed(self, name: str, action: Callable[[], object]) -> Callable[[], None]:
        """``action`` as a cleanup callback whose time counts for ``name``."""

        def run() -> None:
            self._last = time.monotonic()
            try:
                action()
            finally:
                self.mark(name)

        return run


# -- the pipeline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every configuration shares."""

    args: argparse.Namespace
    database_url: str
    emulator_host: str
    llm: OfflineLLMServer
    work_dir: Path
    shared_emulator: bool  # PUBSUB_EMULATOR_HOST: delete our topics, the emulator stays


def _ideas(count: int, label: str) -> list[str]:
    return [f"{IDEA} ({label} {index})" for index in range(count)]


def measure_pipeline(ctx: Context, shape: Shape, index: int) -> Row:
    """Start the workers, time lone runs, then N runs at once; the workers stop after."""
    args = ctx.args
    namespace = f"bench{index}{os.getpid()}"
    overrides = {
        **_stack.WORKER_ENV,
        "DATABASE_URL": ctx.database_url,
        "PUBSUB_EMULATOR_HOST": ctx.emulator_host,
        "PUBSUB_PROJECT_ID": "bench-pipeline",
        "PUBSUB_TOPIC": f"{namespace}-jobs",
        "PUBSUB_SUBSCRIPTION": f"{namespace}-jobs-sub",
        "OPENAI_BASE_URL": ctx.llm.base_url,
        "WORKER_PROCESSES": str(shape.processes),
        "WORKER_MAX_CONCURRENCY": str(shape.threads),
    }
    phases = Phases()
    with contextlib.ExitStack() as cleanup:
        target = _stack.Target(overrides, submitters=args.submitters)
        close = partial(target.close, delete_resources=ctx.shared_emulator)
        cleanup.callback(phases.timed("stop", close))
        target.broker.provision()  # topics exist before the clock starts
        worker = start_worker(
            target.env,
            ctx.work_dir,
            f"{index}-{shape.processes}x{shape.threads}",
            processes=shape.processes,
            threads=shape.threads,
            cwd=_stack.REPO_ROOT,
        )
        cleanup.callback(phases.timed("stop", partial(_stop_worker, worker)))
        worker.wait_until_ready(READY_TIMEOUT_S)
        workers = [worker]
        phases.mark("start")

        def one_at_a_time(ideas: list[str]) -> list[_stack.RunTiming]:
            run_ids = []
            for idea in ideas:
                run_ids.append(target.submit(idea))
                ended = target.wait_for(
                    run_ids[-1:], timeout=args.timeout, workers=workers, poll_s=UNLOADED_POLL_S
                )
                if not ended:
                    raise RuntimeError(
                        f"a lone run did not end in {args.timeout:.0f} s; worker log:\n"
                        + worker.tail(1500)
                    )
            return target.timings(run_ids)

        one_at_a_time(_ideas(args.warmup, "warm-up"))  # streams, pools, first imports
        unloaded = one_at_a_time(_ideas(args.unloaded, "unloaded"))
        phases.mark("lone runs")

        sources = _cpu.shared_sources(target.sessions, ctx.emulator_host)
        meter = _cpu.CpuMeter(
            {"workers": worker.pids, **sources, "this process": _cpu.this_process}
        )
        ctx.llm.reset()
        meter.start()
        run_ids = target.submit_many(_ideas(args.runs, "loaded"))
        target.wait_for(run_ids, timeout=args.timeout, workers=workers, poll_s=LOADED_POLL_S)
        cpu_s = meter.stop()
        phases.mark("loaded")
        stats = ctx.llm.stats()
        loaded = target.timings(run_ids)

    latency = args.latency_ms
    completed = [t for t in loaded if t.latency_ms is not None and t.completed_at is not None]
    span_s = math.nan
    if completed:
        first = min(t.queued_at for t in loaded)
        last = max(t.completed_at for t in completed if t.completed_at is not None)
        span_s = (last - first).total_seconds()
    return Row(
        title=f"pipeline, {shape}",
        kind="pipeline",
        threads=shape.total,
        critical_ms=PIPELINE_LLM_CALLS * latency,
        runs=args.runs,
        loaded_ms=[t.latency_ms for t in completed if t.latency_ms is not None],
        failed=args.runs - len(completed),
        span_s=span_s,
        unloaded_ms=[t.latency_ms for t in unloaded if t.latency_ms is not None],
        llm_calls=int(stats.get("total", 0)),
        llm_peak=int(stats.get("max_in_flight", 0)),
        segments=_segments(unloaded, latency),
        cpu_s=cpu_s,
        phases=phases.spent,
    )


def _stop_worker(worker: WorkerProcess) -> None:
    """Let in-flight steps finish, but after Ctrl-C (when the emulator may be gone with the
    terminal's signal and the worker cannot drain) kill it sooner."""
    worker.stop(timeout=5 if INTERRUPTED.is_set() else 20)


def _segments(timings: list[_stack.RunTiming], latency_ms: float) -> dict[str, list[float]]:
    """Split each lone run's time along its critical path (see SEGMENTS)."""
    out: dict[str, list[float]] = {name: [] for name, _ in SEGMENTS}
    for name, _ in EXTRA_SEGMENTS:
        out[name] = []

    def ms(later: datetime | None, earlier: datetime | None) -> float:
        assert later is not None and earlier is not None
        return float((later - earlier).total_seconds() * 1000)

    for timing in timings:
        steps = timing.steps
        expand, agg = steps.get("expand"), steps.get("aggregate")
        reviews = [s for s in steps.values() if s.name.startswith("review_")]
        stamps = [expand, agg, *reviews]
        if timing.completed_at is None or any(
            s is None or s.started_at is None or s.completed_at is None for s in stamps
        ):
            continue
        assert expand is not None and agg is not None
        last = max(reviews, key=lambda s: s.completed_at or timing.queued_at)
        out["submit->expand"].append(ms(expand.started_at, timing.queued_at))
        out["expand-LLM"].append(ms(expand.completed_at, expand.started_at) - expand.llm_ms)
        out["->review"].append(ms(last.started_at, expand.completed_at))
        out["review-LLM"].append(ms(last.completed_at, last.started_at) - last.llm_ms)
        out["->aggregate"].append(ms(agg.started_at, last.completed_at))
        out["aggregate"].append(ms(timing.completed_at, agg.started_at))
        out["LLM>L"].append(expand.llm_ms + last.llm_ms - PIPELINE_LLM_CALLS * latency_ms)
        starts = [s.started_at for s in reviews if s.started_at is not None]
        out["review spread"].append(ms(max(starts), min(starts)))
        quickest = min(ms(s.completed_at, s.started_at) - s.llm_ms for s in reviews)
        out["min review-LLM"].append(quickest)
    return out


# -- the earlier system's shape --------------------------------------------------------------


def measure_sequential(ctx: Context, threads: int, unloaded: bool) -> Row:
    """The baseline on a pool of ``threads``: each run expands, then reviews with the five
    personas in turn, then aggregates; lone runs only when ``unloaded``.

    It runs in this process: the offline LLM server shares its GIL, which measured no
    different from a process of its own (the LLM server's work is small next to L).
    """
    args = ctx.args
    overrides = {**_stack.WORKER_ENV, "OPENAI_BASE_URL": ctx.llm.base_url}
    settings = load_settings(**{key.lower(): value for key, value in overrides.items()})
    llm = LLMClient.from_settings(settings)
    personas = personas_from_settings(settings)
    expand, review = expand_choice(settings), review_choice(settings)
    ours = _cpu.CpuMeter({"this process": _cpu.this_process})
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
        ctx.llm.reset()
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
    stats = ctx.llm.stats()
    return Row(
        title=f"sequential personas, {threads} threads",
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


# -- reporting -------------------------------------------------------------------------------


def print_loaded(rows: list[tuple[str, Outcome]], baselines: dict[int, Outcome], runs: int) -> None:
    print(
        f"\nLoaded: {runs} runs submitted at once (latency s; runs/min: first submit -> last end)"
    )
    print(
        f"  {'':40}{'threads':>8}{'runs/min':>10}{'p50':>8}{'p95':>8}{'p99':>8}"
        f"{'not ok':>8}{'LLM calls':>11}{'LLM peak':>10}{'x seq thr':>11}{'x seq p50':>11}"
    )
    for title, outcome in rows:
        if isinstance(outcome, Skipped):
            print(f"  {title:40}{outcome}")
            continue
        base = baselines.get(outcome.threads)
        thr_ratio = p50_ratio = math.nan
        if isinstance(base, Row) and outcome.kind == "pipeline":
            thr_ratio = outcome.runs_per_minute / base.runs_per_minute
            p50_ratio = outcome.loaded(0.5) / base.loaded(0.5)
        print(
            f"  {outcome.title:40}{outcome.threads:8d}{_f(outcome.runs_per_minute, ',.0f', 10)}"
            f"{_f(outcome.loaded(0.5) / 1000, '.2f', 8)}{_f(outcome.loaded(0.95) / 1000, '.2f', 8)}"
            f"{_f(outcome.loaded(0.99) / 1000, '.2f', 8)}{outcome.failed:8d}"
            f"{outcome.llm_calls or 0:11d}{outcome.llm_peak or 0:10d}"
            f"{_f(thr_ratio, '.2f', 11)}{_f(p50_ratio, '.2f', 11)}"
        )
    print(
        "  (not ok: failed or unfinished at --timeout; x seq: against the sequential baseline "
        "with the same total threads, p50 below 1 is faster)"
    )


def print_unloaded(rows: list[tuple[str, Outcome]], samples: int) -> None:
    print(
        f"\nUnloaded: {samples} runs one at a time, each waited for (ms; overhead = p50 - critical)"
    )
    print(f"  {'':40}{'critical':>10}{'p50':>8}{'min':>8}{'max':>8}{'overhead':>10}  target")
    for title, outcome in rows:
        if isinstance(outcome, Skipped):
            print(f"  {title:40}{outcome}")
            continue
        if not outcome.unloaded_ms:
            continue
        verdict = ""
        if outcome.kind == "pipeline":
            passed = outcome.overhead_ms < TARGET_OVERHEAD_MS
            verdict = f"[{'PASS' if passed else 'MISS'}] < {TARGET_OVERHEAD_MS:.0f} ms"
        print(
            f"  {outcome.title:40}{outcome.critical_ms:10.0f}{_f(outcome.unloaded_p50, '.0f', 8)}"
            f"{_f(min(outcome.unloaded_ms), '.0f', 8)}{_f(max(outcome.unloaded_ms), '.0f', 8)}"
            f"{_f(outcome.overhead_ms, '.0f', 10)}  {verdict}"
        )


def print_segments(rows: list[tuple[str, Outcome]]) -> None:
    pipeline = [row for _, row in rows if isinstance(row, Row) and row.segments]
    if not pipeline:
        return
    names = [name for name, _ in SEGMENTS + EXTRA_SEGMENTS]
    print(
        "\nWhere a lone pipeline run's overhead goes (p50 of each segment, ms; database timestamps)"
    )
    print(f"  {'':40}" + "".join(f"{name:>16}" for name in names))
    for row in pipeline:
        cells = "".join(_f(percentile(row.segments[name], 0.5), ".1f", 16) for name in names)
        print(f"  {row.title:40}{cells}")
    for name, meaning in SEGMENTS + EXTRA_SEGMENTS:
        print(f"    {name:15}{meaning}")


# -- running ---------------------------------------------------------------------------------


CPU_COLUMNS = ("workers", "PostgreSQL", "emulator", "this process")


def print_cpu(rows: list[tuple[str, Outcome]]) -> None:
    """Whether the box, not the design, set the pace: CPU per run and how busy the CPUs were."""
    measured = [row for _, row in rows if isinstance(row, Row) and row.cpu_s]
    if not measured:
        return
    cpus = os.cpu_count() or 1
    print(
        f"\nCPU per loaded run (ms, from /proc; busy = all of it / (loaded wall x {cpus} CPUs); "
        "'this process': offline LLM, submitting, baseline)"
    )
    print(
        f"  {'':40}" + "".join(f"{name:>17}" for name in CPU_COLUMNS) + f"{'total':>8}{'busy':>7}"
    )
    for row in measured:
        cells = "".join(
            _f(row.cpu_s[name] / row.runs * 1000 if name in row.cpu_s else math.nan, ".0f", 17)
            for name in CPU_COLUMNS
        )
        total = sum(row.cpu_s.values())
        wall = row.phases.get("loaded", math.nan)
        busy = total / (wall * cpus) * 100 if wall > 0 else math.nan
        print(f"  {row.title:40}{cells}{total / row.runs * 1000:8.0f}{_f(busy, '.0f', 6)}%")
    print(
        "  (PostgreSQL: the backends of this database only; other load on the box is not counted)"
    )


def _progress(title: str, outcome: Outcome, elapsed: float) -> None:
    detail = ""
    if isinstance(outcome, Row) and outcome.phases:
        detail = " (" + ", ".join(f"{k} {v:.0f} s" for k, v in outcome.phases.items()) + ")"
    elif isinstance(outcome, Skipped):
        detail = f" ({str(outcome)[:100]})"
    print(f"  ... {title}: {elapsed:.0f} s{detail}", flush=True)


def _shape(text: str) -> Shape:
    processes, sep, threads = text.lower().partition("x")
    wrong = argparse.ArgumentTypeError(f"expected PROCESSESxTHREADS, e.g. 2x16, not {text!r}")
    try:
        shape = Shape(int(processes), int(threads))
    except ValueError:
        raise wrong from None
    if not sep or shape.processes < 1 or shape.threads < 1:
        raise wrong
    return shape


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
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
    add("--quick", action="store_true", help="sanity run: 10 runs, 1x8, 3 lone runs")
    add("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs if args.runs is not None else (10 if quick else 100)
    args.unloaded = args.unloaded if args.unloaded is not None else (3 if quick else 10)
    args.workers = args.workers or (QUICK_SHAPES if quick else DEFAULT_SHAPES)
    if args.runs < 1 or args.unloaded < 1 or args.warmup < 0 or args.latency_ms < 0:
        parser.error("--runs and --unloaded must be positive, --warmup and --latency-ms >= 0")
    return args


def run(args: argparse.Namespace) -> list[tuple[str, Outcome]]:
    rows: list[tuple[str, Outcome]] = []
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pipeline-")))
        configured_emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        emulator = stack.enter_context(pubsub_emulator(configured_emulator))
        database = stack.enter_context(_stack.scratch_database(args.database_url, work_dir))
        llm = stack.enter_context(OfflineLLMServer(latency_ms=args.latency_ms))
        print("Servers:")
        print(f"  {'database':10}{database.description}")
        print(f"  {'Pub/Sub':10}{emulator.description}")
        where = f"offline server {llm.base_url} in this process"
        print(f"  {'LLM':10}{where}, {args.latency_ms:.0f} ms a call")
        sys.stdout.flush()
        for index, shape in enumerate(args.workers):
            title = f"pipeline, {shape}"
            if emulator.host is None:
                rows.append((title, Skipped(emulator.description)))
                continue
            ctx = Context(
                args, database.url, emulator.host, llm, work_dir, bool(configured_emulator)
            )
            started = time.monotonic()
            outcome = attempt(partial(measure_pipeline, ctx, shape, index))
            rows.append((title, outcome))
            _progress(title, outcome, time.monotonic() - started)
        if not args.no_baseline:
            ctx = Context(args, database.url, emulator.host or "", llm, work_dir, False)
            for position, threads in enumerate(sorted({shape.total for shape in args.workers})):
                title = f"sequential personas, {threads} threads"
                started = time.monotonic()
                outcome = attempt(partial(measure_sequential, ctx, threads, position == 0))
                rows.append((title, outcome))
                _progress(title, outcome, time.monotonic() - started)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    shapes = ", ".join(str(shape) for shape in args.workers)
    baseline = "none" if args.no_baseline else "sequential personas, same total threads"
    print(
        f"bench.pipeline: {os.cpu_count()} CPUs, load average {load}\n"
        f"  {args.runs} runs at once per row ({args.submitters} submitting threads), offline LLM "
        f"{args.latency_ms:.0f} ms a call, {args.unloaded} lone runs for the overhead "
        f"(after {args.warmup} warm-up)\n  workers: {shapes}; baseline: {baseline}"
    )
    started = time.monotonic()
    try:
        with _stack.interrupt_once("workers, emulator and database", INTERRUPTED.set):
            rows = run(args)
    except KeyboardInterrupt:
        print("cleaned up", file=sys.stderr)
        return 130
    baselines: dict[int, Outcome] = {
        outcome.threads: outcome
        for _, outcome in rows
        if isinstance(outcome, Row) and outcome.kind == "sequential"
    }
    print_loaded(rows, baselines, args.runs)
    print_unloaded(rows, args.unloaded)
    print_segments(rows)
    print_cpu(rows)
    elapsed = time.monotonic() - started
    print(f"\n(total {elapsed:.0f} s; the target is informative, exit status is 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
