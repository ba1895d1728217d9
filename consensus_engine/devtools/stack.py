"""A pipeline assembled from settings overrides, as the benchmarks and the tests drive it.

The calling process plays the API: it submits runs through the run service (stored,
first message published), starts real ``dramatiq consensus_engine.actors`` workers
and watches the database.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from google.api_core import exceptions as gexc
from sqlalchemy.orm import Session, selectinload, sessionmaker

from brokers.pubsub import PubSubBroker
from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.db.models import Run
from consensus_engine.devtools.process import environ_without_settings, free_port
from consensus_engine.devtools.service import WorkerProcess, launch_worker
from consensus_engine.domain.council import Council
from consensus_engine.domain.personas import PersonaSet
from consensus_engine.domain.runs import Job, Priority, RunStatus
from consensus_engine.jobs import job_sender
from consensus_engine.messaging import build_broker
from consensus_engine.pipeline.config import (
    council_from_settings,
    expand_choice,
    personas_from_settings,
    review_choice,
)
from consensus_engine.pipeline.service import NewRun, RunService
from consensus_engine.settings import load_settings

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_IDEA = "Let people book a bike repair slot online and get a text when it is ready."
WORKER_ENV: dict[str, str] = {
    "ENV": "production",  # JSON lifecycle logs, which tests parse
    "MAX_RETRIES_PER_PERSONA": "3",
    "RETRY_INITIAL_BACKOFF_SECONDS": "0.1",
    "RETRY_MAX_BACKOFF_SECONDS": "2",
    "PUBSUB_AUTO_CREATE": "true",
}
"""What the tests' and the benchmarks' workers share; each adds its log level and timeouts."""


def queue_env(
    database_url: str, emulator_host: str | None, project: str, topic: str
) -> dict[str, str]:
    """The settings that give a stack its database and its own topic and subscription."""
    env = {"DATABASE_URL": database_url, "PUBSUB_PROJECT_ID": project, "PUBSUB_TOPIC": topic}
    env["PUBSUB_SUBSCRIPTION"] = f"{topic}-sub"
    if emulator_host is not None:
        env["PUBSUB_EMULATOR_HOST"] = emulator_host
    return env


class Stack:
    """Settings from ``overrides`` (named as in the environment), sessions on their
    database, a broker on their queues, the run service and the workers started here."""

    def __init__(self, overrides: Mapping[str, str], work_dir: Path, pool: int = 2) -> None:
        self.env = {**environ_without_settings(), **overrides}
        self.settings = load_settings(**{key.lower(): value for key, value in overrides.items()})
        url = overrides["DATABASE_URL"]
        self.engine = create_engine_from_url(url, pool_size=pool, max_overflow=4)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.broker: PubSubBroker = build_broker(self.settings, "plain")
        self.work_dir = work_dir
        self.workers: list[WorkerProcess] = []

    def start_worker(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        processes: int = 1,
        threads: int = 8,
        entry_point: Sequence[str] | None = None,
        wait_ready: bool = True,
        name: str | None = None,
        ready_timeout: float = 60,
    ) -> WorkerProcess:
        """``dramatiq consensus_engine.actors -p P -t T`` (or ``entry_point``) plus ``args``,
        on free ports, with ``worker-NAME.log`` and a Prometheus directory of its own in the
        work directory; ``env`` wins over all of that."""
        name = name or str(len(self.workers))
        worker_env = {
            **self.env,
            "WORKER_HTTP_PORT": str(free_port()),
            "WORKER_METRICS_PORT": str(free_port()),
            "dramatiq_prom_db": str(self.work_dir / f"prom-{name}"),
            **(env or {}),
        }
        Path(worker_env["dramatiq_prom_db"]).mkdir(exist_ok=True)
        shutdown_ms = int(worker_env.get("WORKER_SHUTDOWN_TIMEOUT_SECONDS", "10")) * 1000
        command = entry_point or [
            *(sys.executable, "-m", "dramatiq", "consensus_engine.actors"),
            *("-p", str(processes), "-t", str(threads), "--skip-logging"),
            *("--worker-shutdown-timeout", str(shutdown_ms)),
        ]
        log_path = self.work_dir / f"worker-{name}.log"
        worker = launch_worker([*command, *args], worker_env, log_path, REPO_ROOT)
        self.workers.append(worker)
        if wait_ready:
            worker.wait_until_ready(ready_timeout)
        return worker

    def service(
        self, *, publish: bool = True, job_timeout_seconds: float | None = None
    ) -> RunService:
        """The run service as the API has it; with ``publish`` off, every publish is lost."""
        send = job_sender(self.broker, self.settings) if publish else _lost
        timeout = job_timeout_seconds or self.settings.worker_job_timeout_seconds
        return RunService(
            self.sessions, send, job_timeout_seconds=timeout, budgets=self.settings.budgets
        )

    def submit(
        self,
        idea: str = SAMPLE_IDEA,
        *,
        priority: Priority = Priority.NORMAL,
        publish: bool = True,
        job_timeout_seconds: float | None = None,
        tenant: str = "default",
        personas: PersonaSet | None = None,
        council: Council | None = None,
    ) -> uuid.UUID:
        """Store a run as the API does and, unless ``publish`` is off, send its first message;
        the personas and council are the settings' unless given."""
        settings = self.settings
        new = NewRun(
            idea=idea,
            personas=personas or personas_from_settings(settings),
            expand=expand_choice(settings),
            review=review_choice(settings),
            priority=priority,
            council=council or council_from_settings(settings),
        )
        service = self.service(publish=publish, job_timeout_seconds=job_timeout_seconds)
        return service.submit(new, tenant=tenant).run.id

    def runs(self, run_ids: Sequence[uuid.UUID]) -> list[Run]:
        """The runs with their steps, reviews, proposal, decision and LLM calls loaded."""
        relations = (Run.steps, Run.reviews, Run.proposal, Run.decision_record, Run.llm_calls)
        query = sa.select(Run).where(Run.id.in_(run_ids)).options(*map(selectinload, relations))
        with self.sessions() as session:
            return list(session.scalars(query))

    def wait_for_runs(
        self,
        run_ids: Sequence[uuid.UUID],
        *,
        timeout: float,
        poll_s: float,
        workers: Sequence[WorkerProcess] = (),
    ) -> int:
        """Until every run has ended or ``timeout`` passed; how many have. Fails if one of
        ``workers`` died."""
        deadline = time.monotonic() + timeout
        query = sa.select(sa.func.count()).where(
            Run.id.in_(run_ids), Run.status.in_([s for s in RunStatus if s.is_terminal])
        )
        while True:
            with self.sessions() as session:
                ended = session.scalar(query) or 0
            if ended >= len(run_ids) or time.monotonic() >= deadline:
                return ended
            for worker in workers:
                worker.check_alive()
            time.sleep(poll_s)

    def close(self, *, delete_resources: bool = False) -> None:
        """Kill leftover workers (no draining, nothing left behind) and close the clients,
        first deleting the stack's topics and subscriptions when the emulator outlives it
        (one we started is simply stopped)."""
        for worker in self.workers:
            if worker.popen.poll() is None:
                worker.kill()
        if delete_resources:
            cleanup = partial(delete_pubsub_resources, self.broker)
            attempt_cleanup("delete Pub/Sub resources", cleanup)
        attempt_cleanup("close the broker", self.broker.close)
        attempt_cleanup("dispose of the engine", self.engine.dispose)


def attempt_cleanup(what: str, action: Callable[[], object]) -> None:
    """Cleanup must not hide the figures (or other cleanups): say what failed and go on."""
    try:
        action()
    except Exception as error:
        log.warning("could not %s: %r", what, error)


def delete_pubsub_resources(broker: PubSubBroker) -> None:
    """Leave nothing behind on an emulator that outlives us (PUBSUB_EMULATOR_HOST)."""
    provisioner, clients = broker.provisioner, broker.clients
    for resources in broker.queues.values():
        for subscription in (resources.subscription, resources.dead_letter_subscription):
            with contextlib.suppress(gexc.NotFound):
                request = {"subscription": provisioner.subscription_path(subscription)}
                clients.subscriber.delete_subscription(request=request, retry=None, timeout=5)
        for topic in (resources.topic, resources.dead_letter_topic):
            with contextlib.suppress(gexc.NotFound):
                request = {"topic": provisioner.topic_path(topic)}
                clients.publisher.delete_topic(request=request, retry=None, timeout=5)


def _lost(_jobs: Sequence[Job]) -> None:
    raise ConnectionError("this publish is lost on purpose")
