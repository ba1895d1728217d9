"""What ``bench.pipeline`` runs against: a scratch database, job queues on the emulator and
real ``dramatiq consensus_engine.actors`` worker processes.

The benchmark process plays the API: it stores runs and publishes their first message
with the functions the API uses, then reads the timings the workers wrote.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from google.api_core import exceptions as gexc
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from brokers.pubsub import PubSubBroker
from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.db.migrations import upgrade_head
from consensus_engine.db.models import LlmCall, Run, StepProgress
from consensus_engine.devtools.database import connection_error
from consensus_engine.devtools.database import scratch_database as scratch_postgres
from consensus_engine.devtools.environment import environ_without_settings
from consensus_engine.devtools.results import attempt_cleanup
from consensus_engine.devtools.worker import WorkerProcess
from consensus_engine.domain.runs import RunStatus
from consensus_engine.jobs import job_sender
from consensus_engine.messaging import build_broker
from consensus_engine.pipeline.config import expand_choice, personas_from_settings, review_choice
from consensus_engine.pipeline.service import NewRun, RunService
from consensus_engine.settings import load_settings

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

# -- the database ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    url: str
    description: str


@contextlib.contextmanager
def scratch_database(server_url: str, sqlite_dir: Path) -> Iterator[Database]:
    """A new, migrated PostgreSQL database dropped afterwards; SQLite if the server is away."""
    why_not = connection_error(server_url, timeout_s=3)
    if why_not is not None:
        path = sqlite_dir / "bench.sqlite3"
        upgrade_head(f"sqlite:///{path}")
        shown = sa.make_url(server_url).render_as_string(hide_password=True)
        unreachable = f"PostgreSQL at {shown} unreachable ({why_not})"
        yield Database(f"sqlite:///{path}", f"SQLite {path} -- {unreachable}")
        return
    with scratch_postgres(server_url, "bench_pipeline") as url:
        upgrade_head(url)
        version, name = _server_version(url), sa.make_url(url).database
        yield Database(url, f"PostgreSQL {version}, database {name} (dropped at the end)")


def _server_version(url: str) -> str:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return str(connection.exec_driver_sql("SHOW server_version").scalar())
    finally:
        engine.dispose()


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
        self.broker: PubSubBroker = build_broker(self.settings, "plain")
        self.submitters = submitters
        self.personas = personas_from_settings(self.settings)
        self.runs = RunService(
            self.sessions,
            job_sender(self.broker, self.settings),
            job_timeout_seconds=self.settings.worker_job_timeout_seconds,
        )

    def submit(self, idea: str) -> uuid.UUID:
        """Submit a run through the run service, as the API does."""
        settings = self.settings
        new = NewRun(
            idea=idea,
            personas=self.personas,
            expand=expand_choice(settings),
            review=review_choice(settings),
        )
        return self.runs.submit(new).run.id

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
            attempt_cleanup(
                "delete Pub/Sub resources", partial(delete_pubsub_resources, self.broker)
            )
        attempt_cleanup("close the broker", self.broker.close)
        attempt_cleanup("dispose of the engine", self.engine.dispose)


def delete_pubsub_resources(broker: PubSubBroker) -> None:
    """Leave nothing behind on an emulator that outlives the benchmark (PUBSUB_EMULATOR_HOST)."""
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
