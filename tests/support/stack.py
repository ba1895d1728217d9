"""A whole pipeline for one test: a fresh database, job queues on the emulator, the offline
LLM over HTTP, and real worker processes (``dramatiq consensus_engine.actors``).

The test process plays the API (see ``consensus_engine.devtools.stack``), then watches
the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from consensus_engine.db.models import LlmCall, PersonaReview, ProposalVersion, Run
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.devtools.stack import SAMPLE_IDEA, WORKER_ENV, Stack, queue_env
from consensus_engine.domain.runs import Job, Priority, Stage
from consensus_engine.jobs import send_jobs
from consensus_engine.pipeline.service import NewRevision

__all__ = ["SAMPLE_IDEA", "PipelineStack", "StackFactory"]

WORKER_DEFAULTS: dict[str, str] = {
    **WORKER_ENV,
    "LOG_LEVEL": "INFO",
    "WORKER_ACK_DEADLINE_SECONDS": "10",
    "WORKER_STEP_TIMEOUT_SECONDS": "10",
    "WORKER_JOB_TIMEOUT_SECONDS": "300",
    "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "30",
    "SWEEPER_INTERVAL_SECONDS": "1",
    "SWEEPER_REQUEUE_AFTER_SECONDS": "2",
}


class PipelineStack(Stack):
    """Everything a pipeline test drives, the offline LLM included; see the module docstring.
    Workers still running at :meth:`close` are killed."""

    def __init__(
        self,
        database_url: str,
        emulator_host: str,
        namespace: str,
        tmp_path: Path,
        llm: OfflineLLMServer,
        env: Mapping[str, str] | None = None,
    ) -> None:
        queues = queue_env(database_url, emulator_host, "pipeline-tests", f"{namespace}-jobs")
        llm_url = {"OPENAI_BASE_URL": llm.base_url}
        super().__init__({**WORKER_DEFAULTS, **queues, **llm_url, **(env or {})}, tmp_path)
        self.llm = llm

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
        (run,) = self.runs([run_id])
        return run

    def wait_for(self, run_id: uuid.UUID, timeout: float = 90) -> Run:
        """Until the run has ended; fails with the workers' logs if it does not."""
        if not self.wait_for_runs([run_id], timeout=timeout, poll_s=0.1):
            with self.sessions() as session:
                status = session.scalar(sa.select(Run.status).where(Run.id == run_id))
            logs = "\n".join(w.logs()[-4000:] for w in self.workers)
            raise AssertionError(f"run {run_id} still {status} after {timeout} s\n{logs}")
        return self.run(run_id)

    def row_counts(self, run_id: uuid.UUID) -> dict[str, int]:
        """Rows the run owns in each result table, to check nothing was written twice."""
        counts = {}
        with self.sessions() as session:
            for model in (ProposalVersion, PersonaReview, LlmCall):
                query = sa.select(sa.func.count()).select_from(model).where(model.run_id == run_id)
                counts[model.__tablename__] = session.scalar(query) or 0
        return counts


StackFactory = Callable[..., PipelineStack]
"""The ``make_stack`` fixture: ``make_stack(env={...}, **offline_llm_options)``."""
