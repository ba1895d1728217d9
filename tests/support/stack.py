"""A whole pipeline for one test: a fresh database, job queues on the emulator, the offline
LLM over HTTP, and real worker processes (``dramatiq consensus_engine.actors``).

The test process plays the API: it stores runs and publishes their first message
with the same functions the API uses, then watches the database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from brokers.pubsub import PubSubBroker
from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.db.models import LlmCall, PersonaReview, ProposalVersion, Run
from consensus_engine.domain.runs import Priority
from consensus_engine.jobs import enqueue_run
from consensus_engine.llm.offline import OfflineLLMServer
from consensus_engine.pipeline.config import expand_choice, personas_from_settings, review_choice
from consensus_engine.pipeline.submit import mark_enqueued, submit_revision, submit_run
from consensus_engine.queues import build_pubsub_broker
from consensus_engine.settings import Settings, load_settings
from support import REPO_ROOT, environ_without_settings
from support.pubsub import free_port

SAMPLE_IDEA = "Let people book a bike repair slot online and get a text when it is ready."

WORKER_DEFAULTS: dict[str, str] = {
    "ENV": "production",  # JSON lifecycle logs, which tests parse
    "LOG_LEVEL": "INFO",
    "WORKER_ACK_DEADLINE_SECONDS": "10",
    "WORKER_STEP_TIMEOUT_SECONDS": "10",
    "WORKER_JOB_TIMEOUT_SECONDS": "300",
    "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "30",
    "MAX_RETRIES_PER_PERSONA": "3",
    "RETRY_INITIAL_BACKOFF_SECONDS": "0.1",
    "RETRY_MAX_BACKOFF_SECONDS": "2",
    "SWEEPER_INTERVAL_SECONDS": "1",
    "SWEEPER_REQUEUE_AFTER_SECONDS": "2",
    "PUBSUB_AUTO_CREATE": "true",
}


@dataclass
class WorkerProcess:
    """One ``dramatiq consensus_engine.actors`` process tree and its log."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    http_port: int
    metrics_port: int

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the worker finishes in-flight steps and exits."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean-up of any kind."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON lifecycle records the worker wrote so far."""
        records = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    if "lifecycle_event" in record:
                        records.append(record)
        return records

    def get(self, path: str, *, port: int | None = None) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{port or self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def wait_until_ready(self, timeout: float = 60) -> None:
        """Until ``/readyz`` answers 200 (imports, broker and database checked)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"worker exited with {self.popen.returncode}:\n{self.logs()}")
            with contextlib.suppress(OSError):
                if self.get("/readyz")[0] == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.logs()[-3000:]}")


@dataclass
class PipelineStack:
    """Everything a pipeline test drives; see the module docstring."""

    env: dict[str, str]
    settings: Settings
    sessions: sessionmaker[Session]
    broker: PubSubBroker
    llm: OfflineLLMServer
    tmp_path: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(
        self,
        *dramatiq_args: str,
        env: dict[str, str] | None = None,
        processes: int = 1,
        threads: int = 8,
        entry_point: Sequence[str] | None = None,
        wait_ready: bool = True,
    ) -> WorkerProcess:
        """Start a worker; ``entry_point`` replaces ``dramatiq consensus_engine.actors``."""
        http_port, metrics_port = free_port(), free_port()
        worker_env = {
            **self.env,
            "WORKER_HTTP_PORT": str(http_port),
            "WORKER_METRICS_PORT": str(metrics_port),
            "dramatiq_prom_db": str(self.tmp_path / f"prom-{len(self.workers)}"),
            **(env or {}),
        }
        Path(worker_env["dramatiq_prom_db"]).mkdir(exist_ok=True)
        shutdown_ms = int(worker_env["WORKER_SHUTDOWN_TIMEOUT_SECONDS"]) * 1000
        command = [*entry_point] if entry_point is not None else [
            *(sys.executable, "-m", "dramatiq", "consensus_engine.actors"),
            *("-p", str(processes), "-t", str(threads), "--skip-logging"),
            *("--worker-shutdown-timeout", str(shutdown_ms)),
        ]
        log_path = self.tmp_path / f"worker-{len(self.workers)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [*command, *dramatiq_args],
                env=worker_env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(
            popen,
            log_path,
            int(worker_env["WORKER_HTTP_PORT"]),
            int(worker_env["WORKER_METRICS_PORT"]),
        )
        self.workers.append(worker)
        if wait_ready:
            worker.wait_until_ready()
        return worker

    def submit(
        self,
        idea: str = SAMPLE_IDEA,
        *,
        priority: Priority = Priority.NORMAL,
        publish: bool = True,
        job_timeout_seconds: float | None = None,
    ) -> uuid.UUID:
        """Store a run as the API does and, unless ``publish`` is off, send its first message."""
        settings = self.settings
        with self.sessions.begin() as session:
            run = submit_run(
                session,
                idea=idea,
                personas=personas_from_settings(settings),
                expand=expand_choice(settings),
                review=review_choice(settings),
                job_timeout_seconds=job_timeout_seconds or settings.worker_job_timeout_seconds,
                priority=priority,
            )
            run_id = run.id
        if publish:
            self.publish(run_id, priority)
        return run_id

    def revise(self, parent_id: uuid.UUID, **options: Any) -> uuid.UUID:
        with self.sessions.begin() as session:
            parent = session.get_one(Run, parent_id)
            run = submit_revision(
                session,
                parent,
                job_timeout_seconds=self.settings.worker_job_timeout_seconds,
                **options,
            )
            run_id, priority = run.id, run.priority
        self.publish(run_id, priority)
        return run_id

    def publish(self, run_id: uuid.UUID, priority: Priority = Priority.NORMAL) -> None:
        enqueue_run(self.broker, self.settings, run_id, priority)
        with self.sessions.begin() as session:
            mark_enqueued(session, run_id)

    def run(self, run_id: uuid.UUID) -> Run:
        """The run with its steps, reviews, proposal and decision loaded."""
        with self.sessions() as session:
            return session.scalars(
                sa.select(Run)
                .where(Run.id == run_id)
                .options(
                    selectinload(Run.steps),
                    selectinload(Run.reviews),
                    selectinload(Run.proposal),
                    selectinload(Run.decision_record),
                    selectinload(Run.llm_calls),
                )
            ).one()

    def wait_for(self, run_id: uuid.UUID, timeout: float = 90) -> Run:
        """Until the run has ended; fails with the workers' logs if it does not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.sessions() as session:
                status = session.scalar(sa.select(Run.status).where(Run.id == run_id))
            if status is not None and status.is_terminal:
                return self.run(run_id)
            time.sleep(0.1)
        logs = "\n".join(w.logs()[-4000:] for w in self.workers)
        raise AssertionError(f"run {run_id} still {status} after {timeout} s\n{logs}")

    def count(self, model: type[Any], run_id: uuid.UUID) -> int:
        with self.sessions() as session:
            return session.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.run_id == run_id)
            ) or 0

    def row_counts(self, run_id: uuid.UUID) -> dict[str, int]:
        """Rows the run owns in each result table, to check nothing was written twice."""
        return {
            "proposal_versions": self.count(ProposalVersion, run_id),
            "persona_reviews": self.count(PersonaReview, run_id),
            "llm_calls": self.count(LlmCall, run_id),
        }

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.popen.poll() is None:
                worker.kill()


StackFactory = Callable[..., PipelineStack]
"""The ``make_stack`` fixture: ``make_stack(env={...}, **offline_llm_options)``."""


@contextlib.contextmanager
def pipeline_stack(
    *,
    database_url: str,
    emulator_host: str,
    namespace: str,
    tmp_path: Path,
    llm: OfflineLLMServer,
    env: dict[str, str] | None = None,
) -> Iterator[PipelineStack]:
    """Build a :class:`PipelineStack`; workers still running at the end are killed."""
    topic = f"{namespace}-jobs"
    overrides = {
        **WORKER_DEFAULTS,
        "DATABASE_URL": database_url,
        "PUBSUB_EMULATOR_HOST": emulator_host,
        "PUBSUB_PROJECT_ID": "pipeline-tests",
        "PUBSUB_TOPIC": topic,
        "PUBSUB_SUBSCRIPTION": f"{topic}-sub",
        "OPENAI_BASE_URL": llm.base_url,
        **(env or {}),
    }
    settings = load_settings(**{key.lower(): value for key, value in overrides.items()})
    engine = create_engine_from_url(database_url, pool_size=2, max_overflow=4)
    broker = build_pubsub_broker(settings)
    stack = PipelineStack(
        env={**environ_without_settings(), **overrides},
        settings=settings,
        sessions=session_factory(engine),
        broker=broker,
        llm=llm,
        tmp_path=tmp_path,
    )
    try:
        yield stack
    finally:
        stack.stop_workers()
        broker.close()
        engine.dispose()
