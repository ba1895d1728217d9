"""A whole pipeline for one test: a fresh database, job queues on the emulator, the offline
LLM over HTTP, and real worker processes (``dramatiq consensus_engine.actors``).

The test process plays the API: it stores runs and publishes their first message
with the same functions the API uses, then watches the database.
"""

from __future__ import annotations

import contextlib
import time
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
from consensus_engine.devtools.environment import environ_without_settings
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.devtools.worker import WorkerProcess, start_worker
from consensus_engine.domain.runs import Job, Priority, Stage
from consensus_engine.jobs import job_sender, send_jobs
from consensus_engine.messaging import build_broker
from consensus_engine.pipeline.config import expand_choice, personas_from_settings, review_choice
from consensus_engine.pipeline.service import NewRevision, NewRun, RunService
from consensus_engine.settings import Settings, load_settings
from support import REPO_ROOT

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
        worker = start_worker(
            self.env,
            self.tmp_path,
            str(len(self.workers)),
            processes=processes,
            threads=threads,
            args=dramatiq_args,
            entry_point=entry_point,
            overrides=env,
            cwd=REPO_ROOT,
        )
        self.workers.append(worker)
        if wait_ready:
            worker.wait_until_ready()
        return worker

    def service(
        self, *, publish: bool = True, job_timeout_seconds: float | None = None
    ) -> RunService:
        """The run service as the API has it; with ``publish`` off, every publish is lost."""
        send = job_sender(self.broker, self.settings) if publish else _lost
        timeout = job_timeout_seconds or self.settings.worker_job_timeout_seconds
        return RunService(self.sessions, send, job_timeout_seconds=timeout)

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
        new = NewRun(
            idea=idea,
            personas=personas_from_settings(settings),
            expand=expand_choice(settings),
            review=review_choice(settings),
            priority=priority,
        )
        service = self.service(publish=publish, job_timeout_seconds=job_timeout_seconds)
        return service.submit(new).run.id

    def revise(self, parent_id: uuid.UUID, **options: Any) -> uuid.UUID:
        """A revision of ``parent_id`` as the API makes it (``NewRevision``'s fields)."""
        if options.get("rerun_personas") is not None:
            options["rerun_personas"] = tuple(options["rerun_personas"])
        return self.service().revise(parent_id, NewRevision(**options)).run.id

    def publish(self, run_id: uuid.UUID, priority: Priority = Priority.NORMAL) -> None:
        """Send the run's first message once more, as a duplicate delivery would."""
        send_jobs(self.broker, self.settings, [Job(Stage.EXPAND, run_id, priority)])

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
            query = sa.select(sa.func.count()).select_from(model).where(model.run_id == run_id)
            return session.scalar(query) or 0

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
    broker = build_broker(settings, "plain")
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


def _lost(_jobs: Sequence[Job]) -> None:
    raise ConnectionError("this test loses the publish on purpose")
