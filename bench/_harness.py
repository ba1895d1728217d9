"""What the benchmarks share: rows that could not run, percentiles and number formatting,
their servers and workers' settings, the CPU seconds of the processes they run (psutil),
their command line, tables and main."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import tempfile
import time
import types
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import psutil
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db.migrations import upgrade_head
from consensus_engine.devtools.database import admin_connection, connection_error
from consensus_engine.devtools.database import scratch_database as scratch_postgres
from consensus_engine.devtools.emulator import Emulator, pubsub_emulator
from consensus_engine.devtools.stack import WORKER_ENV as SHARED_WORKER_ENV

T = TypeVar("T")
R = TypeVar("R")
PidSource = Callable[[], Collection[int]]
log = logging.getLogger("bench")
# Like the pipeline tests' workers, but quiet (WARNING: no per-step log lines to write and
# parse) and without the sweeper, which would only add database load here.
WORKER_ENV: dict[str, str] = {
    **SHARED_WORKER_ENV,
    "LOG_LEVEL": "WARNING",
    "WORKER_ACK_DEADLINE_SECONDS": "60",
    "WORKER_STEP_TIMEOUT_SECONDS": "60",
    "WORKER_JOB_TIMEOUT_SECONDS": "1800",
    "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "10",
    "SWEEPER_INTERVAL_SECONDS": "3600",
    "SWEEPER_REQUEUE_AFTER_SECONDS": "3600",
    "WORKER_HTTP_HOST": "127.0.0.1",
}
DATABASE_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Skipped:
    """A row that could not run: ``kind`` is "skipped" (a server is missing) or "failed"."""

    reason: str
    kind: str = "skipped"

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


def attempt(action: Callable[[], T]) -> T | Skipped:
    """Run one row; an error becomes a failed row instead of ending the benchmark."""
    try:
        return action()
    except Exception as error:
        log.debug("row failed", exc_info=True)
        return Skipped(f"{type(error).__name__}: {error}"[:600], kind="failed")


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN without samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def fmt(value: float, spec: str, width: int) -> str:
    """``value`` formatted to ``width``, or a dash for a figure that was not measured (NaN)."""
    return f"{'-':>{width}}" if math.isnan(value) else f"{value:{width}{spec}}"


@contextlib.contextmanager
def scratch_database(server_url: str, sqlite_dir: Path) -> Iterator[tuple[str, str]]:
    """The URL and description of a new, migrated PostgreSQL database dropped afterwards;
    SQLite if the server is away."""
    why_not = connection_error(server_url, timeout_s=3)
    if why_not is not None:
        path = sqlite_dir / "bench.sqlite3"
        upgrade_head(f"sqlite:///{path}")
        shown = sa.make_url(server_url).render_as_string(hide_password=True)
        unreachable = f"PostgreSQL at {shown} unreachable ({why_not})"
        yield f"sqlite:///{path}", f"SQLite {path} -- {unreachable}"
        return
    with scratch_postgres(server_url, "bench_pipeline") as url:
        upgrade_head(url)
        with admin_connection(url) as connection:
            version = connection.exec_driver_sql("SHOW server_version").scalar()
        name = sa.make_url(url).database
        yield url, f"PostgreSQL {version}, database {name} (dropped at the end)"


@dataclass(frozen=True)
class Servers:
    work_dir: Path
    database_url: str
    emulator: Emulator
    shared_emulator: bool  # PUBSUB_EMULATOR_HOST's: it outlives us, so delete what we made


@contextlib.contextmanager
def servers(name: str, database_server: str) -> Iterator[Servers]:
    """A work directory, the Pub/Sub emulator and a scratch database until the block ends;
    prints where they are."""
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-")))
        configured = os.environ.get("PUBSUB_EMULATOR_HOST")
        emulator = stack.enter_context(pubsub_emulator(configured))
        url, database = stack.enter_context(scratch_database(database_server, work_dir))
        print(f"Servers:\n  {'database':10}{database}\n  {'Pub/Sub':10}{emulator.description}")
        yield Servers(work_dir, url, emulator, bool(configured))


def pids_running(argument: str) -> set[int]:
    """Processes with ``argument`` as one of their arguments (the emulator's ``--port=N``)."""
    found = psutil.process_iter(["cmdline"])
    return {process.pid for process in found if argument in (process.info["cmdline"] or ())}


def backend_pids(sessions: sessionmaker[Session]) -> list[int]:
    """The PostgreSQL server processes serving this database (none on SQLite)."""
    with sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            return []
        query = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [int(pid) for pid in session.scalars(query)]


def shared_sources(
    sessions: sessionmaker[Session], emulator_host: str | None
) -> dict[str, PidSource]:
    """The servers every benchmark shares: the scratch database's backends and the emulator."""
    sources: dict[str, PidSource] = {"PostgreSQL": partial(backend_pids, sessions)}
    if emulator_host is not None:
        port = emulator_host.rpartition(":")[2]
        sources["emulator"] = partial(pids_running, f"--port={port}")
    return sources


def this_process() -> list[int]:
    return [os.getpid()]


def machine_busy_seconds() -> float:
    """CPU seconds all of the machine's CPUs spent busy since boot: all but idle and iowait.

    Other work on the box (tests, builds) competes for the same cores; the difference
    between this and what our processes spent shows how much.
    """
    times = psutil.cpu_times()  # Linux counts guest time in user and nice already
    return times.user + times.nice + times.system + times.irq + times.softirq + times.steal


class CpuMeter:
    """CPU seconds that named groups of processes spend between two samples: whether the box,
    not the design, set the pace."""

    def __init__(self, sources: Mapping[str, PidSource]) -> None:
        self.sources = sources
        self._start: dict[str, dict[int, float]] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        """User plus system seconds of each group's live processes (one gone is skipped)."""
        sample: dict[str, dict[int, float]] = {}
        for name, source in self.sources.items():
            sample[name] = seconds = {}
            try:
                pids = source()
            except Exception as error:
                log.debug("no pids for %s: %r", name, error)
                continue
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    times = psutil.Process(pid).cpu_times()
                    seconds[pid] = times.user + times.system
        return sample

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        """Per group: what its processes spent since :meth:`start` (all of it for new ones).

        A group with no process at either end (a remote emulator, SQLite) is left out.
        """
        end = self._sample()
        spent: dict[str, float] = {}
        for name, seconds in end.items():
            before = self._start.get(name, {})
            if seconds or before:
                spent[name] = sum(cpu - before.get(pid, 0.0) for pid, cpu in seconds.items())
        return spent


def parser(name: str, description: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=f"python -m bench.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def quick_defaults(args: argparse.Namespace, **defaults: tuple[object, object]) -> None:
    """Options left unset (None) take their ``(--quick, full run)`` default."""
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)


def main(
    name: str,
    details: str,
    measure: Callable[[], T],
    report: Callable[[T], None],
    *,
    stopping: str,
    footer: str,
    on_interrupt: Callable[[], None] = lambda: None,
) -> int:
    """Say how busy the machine is, measure (the first Ctrl-C cleans up and exits 130),
    report, and say how long it all took."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"bench.{name}: {os.cpu_count()} CPUs, load average {load}{details}")

    def interrupt(signum: int, frame: types.FrameType | None) -> None:
        """The first Ctrl-C or SIGTERM unwinds; later ones are ignored, so the cleanup (servers,
        workers, emulator, database: seconds) is not cut short and leaves nothing running."""
        on_interrupt()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        print(f"\ninterrupted: stopping {stopping}...", file=sys.stderr)
        raise KeyboardInterrupt

    started = time.monotonic()
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        results = measure()
    except KeyboardInterrupt:
        print("cleaned up", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    report(results)
    print(f"\n(total {time.monotonic() - started:.0f} s; {footer})")
    return 0


def print_table(
    heading: str,
    header: str,
    rows: Sequence[tuple[str, R | Skipped]],
    cells: Callable[[R], str],
    *,
    width: int = 42,
    notes: str = "",
) -> None:
    """The heading, the column headers, a line per row (its title ``width`` wide, then its
    cells or why it did not run), then the notes; nothing without rows."""
    if not rows:
        return
    print(f"{heading}\n  {'':{width}}{header}")
    for title, row in rows:
        print(f"  {title:{width}}{row if isinstance(row, Skipped) else cells(row)}")
    if notes:
        print(notes)
