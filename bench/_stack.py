"""What ``bench.pipeline`` runs against: a scratch database, job queues on the emulator and
real ``dramatiq consensus_engine.actors`` worker processes.

The benchmark process plays the API: it stores runs and publishes their first message
with the functions the API uses, then reads the timings the workers wrote.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from google.api_core import exceptions as gexc
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from brokers.pubsub import PubSubBroker
from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.db.migrations import upgrade_head
from consensus_engine.db.models import LlmCall, Run, StepProgress
from consensus_engine.domain.runs import Priority, RunStatus
from consensus_engine.jobs import enqueue_run
from consensus_engine.pipeline.config import expand_choice, personas_from_settings, review_choice
from consensus_engine.pipeline.submit import mark_enqueued, submit_run
from consensus_engine.queues import build_pubsub_broker
from consensus_engine.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)

# Like the pipeline tests' worker defaults, but quiet (WARNING: no per-step log lines to
# write and parse) and without the sweeper, which would only add database load here.
WORKER_ENV: dict[str, str] = {
    "ENV": "production",
    "LOG_LEVEL": "WARNING",
    "WORKER_ACK_DEADLINE_SECONDS": "60",
    "WORKER_STEP_TIMEOUT_SECONDS": "60",
    "WORKER_JOB_TIMEOUT_SECONDS": "1800",
    "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "10",
    "MAX_RETRIES_PER_PERSONA": "3",
    "RETRY_INITIAL_BACKOFF_SECONDS": "0.1",
    "RETRY_MAX_BACKOFF_SECONDS": "2",
    "SWEEPER_INTERVAL_SECONDS": "3600",
    "SWEEPER_REQUEUE_AFTER_SECONDS": "3600",
    "PUBSUB_AUTO_CREATE": "true",
    "WORKER_HTTP_HOST": "127.0.0.1",
}

log = logging.getLogger("bench")
T = TypeVar("T")


def free_port() -> int:
    """A port nothing listens on now; the worker binds it a moment later."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environ_without_settings() -> dict[str, str]:
    """This process's environment minus every variable Settings reads, so only ours count."""
    names = {name.upper() for name in Settings.model_fields}
    return {key: value for key, value in os.environ.items() if key.upper() not in names}


def attempt_cleanup(what: str, action: Callable[[], object]) -> None:
    """Cleanup must not hide the figures (or other cleanups): say what failed and go on."""
    try:
        action()
    except Exception as error:
        log.warning("could not %s: %r", what, error)


# -- the database ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    url: str
    description: str


def _admin_engine(server_url: str) -> sa.Engine:
    # AUTOCOMMIT: CREATE/DROP DATABASE refuse to run inside a transaction.
    url = sa.make_url(server_url).set(drivername="postgresql+psycopg2")
    return sa.create_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 3}
    )


@contextlib.contextmanager
def scratch_database(server_url: str, sqlite_dir: Path) -> Iterator[Database]:
    """A new, migrated PostgreSQL database dropped afterwards; SQLite if the server is away."""
    admin = _admin_engine(server_url)
    name = f"bench_pipeline_{secrets.token_hex(4)}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as error:
        admin.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        path = sqlite_dir / "bench.sqlite3"
        url = f"sqlite:///{path}"
        upgrade_head(url)
        shown = sa.make_url(server_url).render_as_string(hide_password=True)
        yield Database(url, f"SQLite {path} -- PostgreSQL at {shown} unreachable ({reason})")
        return
    rendered = (
        sa.make_url(server_url)
        .set(drivername="postgresql+psycopg2", database=name)
        .render_as_string(hide_password=False)
    )
    try:
        upgrade_head(rendered)
        version = _server_version(rendered)
        yield Database(rendered, f"PostgreSQL {version}, database {name} (dropped at the end)")
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _server_version(url: str) -> str:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return str(connection.exec_driver_sql("SHOW server_version").scalar())
    finally:
        engine.dispose()


# -- worker processes --------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One ``dramatiq consensus_engine.actors`` process tree (its own process group)."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    http_port: int

    def tail(self, limit: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-limit:]

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"worker exited with {self.popen.returncode}:\n{self.tail()}")

    def wait_until_ready(self, timeout: float) -> None:
        """Until ``/readyz`` answers 200 (imports, broker and database checked)."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        while time.monotonic() < deadline:
            self.check_alive()
            # Always http://127.0.0.1, never user input.
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout:.0f} s:\n{self.tail()}")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (in-flight steps finish), then SIGKILL whatever is left of the group."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("worker %d ignored SIGTERM for %.0f s", self.popen.pid, timeout)
        # The group is ours (start_new_session): this reaches forked children that outlived
        # their parent, and nothing else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


def start_worker(
    env: Mapping[str, str], *, processes: int, threads: int, work_dir: Path, name: str
) -> WorkerProcess:
    """Start ``python -m dramatiq consensus_engine.actors -p P -t T`` on free ports."""
    http_port = free_port()
    prom_dir = work_dir / f"prom-{name}"
    prom_dir.mkdir(exist_ok=True)
    worker_env = {
        **env,
        "WORKER_HTTP_PORT": str(http_port),
        "WORKER_METRICS_PORT": str(free_port()),
        "dramatiq_prom_db": str(prom_dir),
    }
    shutdown_ms = int(worker_env.get("WORKER_SHUTDOWN_TIMEOUT_SECONDS", "10")) * 1000
    command = [
        sys.executable, "-m", "dramatiq", "consensus_engine.actors",
        "-p", str(processes), "-t", str(threads), "--skip-logging",
        "--worker-shutdown-timeout", str(shutdown_ms),
    ]  # fmt: skip
    log_path = work_dir / f"worker-{name}.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            command,
            env=worker_env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(popen, log_path, http_port)


# -- submitting runs and reading their timings -------------------------------------------------


@dataclass(frozen=True)
class StepTiming:
    name: str
    started_at: datetime | None
    completed_at: datetime | None
    llm_ms: float


@dataclass(frozen=True)
class RunTiming:
    """What the workers wrote about one run."""

    run_id: uuid.UUID
    status: RunStatus
    queued_at: datetime
    completed_at: datetime | None
    steps: dict[str, StepTiming]

    @property
    def latency_ms(self) -> float | None:
        if self.status is not RunStatus.COMPLETED or self.completed_at is None:
            return None
        return (self.completed_at - self.queued_at).total_seconds() * 1000


class Target:
    """One worker configuration's queues plus the database: submit runs, wait, read."""

    def __init__(self, overrides: Mapping[str, str], *, submitters: int) -> None:
        self.env = {**environ_without_settings(), **overrides}
        self.settings = load_settings(**{key.lower(): value for key, value in overrides.items()})
        self.engine = create_engine_from_url(
            overrides["DATABASE_URL"], pool_size=max(2, submitters), max_overflow=2
        )
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.broker: PubSubBroker = build_pubsub_broker(self.settings)
        self.submitters = submitters
        self.personas = personas_from_settings(self.settings)

    def submit(self, idea: str) -> uuid.UUID:
        """Store a run as the API does, publish its expand message, record the publish."""
        settings = self.settings
        with self.sessions.begin() as session:
            run = submit_run(
                session,
                idea=idea,
                personas=self.personas,
                expand=expand_choice(settings),
                review=review_choice(settings),
                job_timeout_seconds=settings.worker_job_timeout_seconds,
            )
            run_id = run.id
        enqueue_run(self.broker, settings, run_id, Priority.NORMAL)
        with self.sessions.begin() as session:
            mark_enqueued(session, run_id)
        return run_id

    def submit_many(self, ideas: list[str]) -> list[uuid.UUID]:
        """All at once, as concurrent API requests would (``submitters`` at a time)."""
        with ThreadPoolExecutor(self.submitters, thread_name_prefix="submit") as pool:
            return list(pool.map(self.submit, ideas))

    def wait_for(
        self,
        run_ids: list[uuid.UUID],
        *,
        timeout: float,
        workers: list[WorkerProcess],
        poll_s: float,
    ) -> int:
        """Until every run has ended; returns how many have. Fails if a worker died."""
        deadline = time.monotonic() + timeout
        ended = 0
        query = (
            sa.select(sa.func.count())
            .select_from(Run)
            .where(Run.id.in_(run_ids), Run.status.in_(TERMINAL))
        )
        while True:
            with self.sessions() as session:
                ended = session.scalar(query) or 0
            if ended >= len(run_ids) or time.monotonic() >= deadline:
                return ended
            for worker in workers:
                worker.check_alive()
            time.sleep(poll_s)

    def timings(self, run_ids: list[uuid.UUID]) -> list[RunTiming]:
        with self.sessions() as session:
            runs = session.execute(
                sa.select(Run.id, Run.status, Run.queued_at, Run.completed_at).where(
                    Run.id.in_(run_ids)
                )
            ).all()
            steps = session.execute(
                sa.select(
                    StepProgress.run_id,
                    StepProgress.step_name,
                    StepProgress.started_at,
                    StepProgress.completed_at,
                ).where(StepProgress.run_id.in_(run_ids))
            ).all()
            calls = session.execute(
                sa.select(LlmCall.run_id, LlmCall.step, sa.func.sum(LlmCall.latency_ms))
                .where(LlmCall.run_id.in_(run_ids))
                .group_by(LlmCall.run_id, LlmCall.step)
            ).all()
        llm_ms = {(run_id, step): float(total or 0) for run_id, step, total in calls}
        by_run: dict[uuid.UUID, dict[str, StepTiming]] = {}
        for run_id, name, started, completed in steps:
            by_run.setdefault(run_id, {})[name] = StepTiming(
                name, started, completed, llm_ms.get((run_id, name), 0.0)
            )
        return [
            RunTiming(run_id, status, queued, completed, by_run.get(run_id, {}))
            for run_id, status, queued, completed in runs
            if queued is not None
        ]

    def close(self, *, delete_resources: bool) -> None:
        """Close the clients, first deleting the configuration's topics and subscriptions
        when the emulator outlives this benchmark (one we started is simply stopped)."""
        if delete_resources:
            attempt_cleanup("delete Pub/Sub resources", self._delete_pubsub_resources)
        attempt_cleanup("close the broker", self.broker.close)
        attempt_cleanup("dispose of the engine", self.engine.dispose)

    def _delete_pubsub_resources(self) -> None:
        broker = self.broker
        subscriber, publisher = broker.clients.subscriber, broker.clients.publisher
        for resources in broker.queues.values():
            for subscription in (resources.subscription, resources.dead_letter_subscription):
                with contextlib.suppress(gexc.NotFound):
                    path = broker.provisioner.subscription_path(subscription)
                    subscriber.delete_subscription(
                        request={"subscription": path}, retry=None, timeout=5
                    )
            for topic in (resources.topic, resources.dead_letter_topic):
                with contextlib.suppress(gexc.NotFound):
                    path = broker.provisioner.topic_path(topic)
                    publisher.delete_topic(request={"topic": path}, retry=None, timeout=5)


# -- CPU accounting ----------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PidSource = Callable[[], list[int]]


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces); None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _cpu_seconds(pid: int) -> float | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state, ppid, pgrp, ... utime is field 14 of the whole line, stime 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _all_pids() -> list[int]:
    try:
        return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return []


def group_pids(pgid: int) -> list[int]:
    """Every process of a process group (a worker and the processes it forked)."""
    found = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is not None and int(fields[2]) == pgid:
            found.append(pid)
    return found


def pids_running(argument: str) -> list[int]:
    """Processes with ``argument`` as one of their arguments (the emulator's ``--port=N``)."""
    needle = argument.encode()
    found = []
    for pid in _all_pids():
        try:
            if needle in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                found.append(pid)
        except OSError:
            continue
    return found


class CpuMeter:
    """CPU seconds that named groups of processes spend between two samples (Linux /proc)."""

    def __init__(self, sources: Mapping[str, PidSource]) -> None:
        self.sources = sources
        self._start: dict[str, dict[int, float]] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        sample: dict[str, dict[int, float]] = {}
        for name, source in self.sources.items():
            seconds: dict[int, float] = {}
            try:
                pids = source()
            except Exception as error:
                log.debug("no pids for %s: %r", name, error)
                pids = []
            for pid in pids:
                cpu = _cpu_seconds(pid)
                if cpu is not None:
                    seconds[pid] = cpu
            sample[name] = seconds
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


def backend_pids(sessions: sessionmaker[Session]) -> list[int]:
    """The PostgreSQL server processes serving this database (none on SQLite)."""
    with sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            return []
        rows = session.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        return [int(pid) for pid in rows]


@contextlib.contextmanager
def interrupt_once(what: str, on_interrupt: Callable[[], None] = lambda: None) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM unwinds; later ones are ignored, so the cleanup (servers,
    workers, emulator, database: seconds) is not cut short and leaves nothing running."""

    def interrupt(signum: int, frame: types.FrameType | None) -> None:
        on_interrupt()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        print(f"\ninterrupted: stopping {what}...", file=sys.stderr)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- reporting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """A row that could not run, and why."""

    reason: str


def attempt(action: Callable[[], T]) -> T | Skipped:
    """Run one row; an error becomes a failed row instead of ending the benchmark."""
    try:
        return action()
    except Exception as error:
        log.debug("row failed", exc_info=True)
        return Skipped(f"failed: {type(error).__name__}: {error}"[:600])


def fmt(value: float, spec: str, width: int) -> str:
    """``value`` formatted to ``width``, or a dash for a figure that was not measured (NaN)."""
    return f"{'-':>{width}}" if math.isnan(value) else f"{value:{width}{spec}}"
