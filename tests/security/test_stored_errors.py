"""A failure that is not the LLM's stores a code and a safe message: no SQL, no stored text,
no parameters reach the run's ``error`` or its steps', which every tenant can read. And
data the database refuses is not retried: it would be refused again.

Real PostgreSQL, the offline LLM over HTTP, the pipeline's stages in this process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from consensus_engine.db import reads
from consensus_engine.db.engine import session_factory
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.runs import Job, Priority, RunStatus, Stage
from consensus_engine.llm import LLMClient
from consensus_engine.pipeline.outcome import OutcomeKind
from consensus_engine.pipeline.retries import RetryPolicy
from consensus_engine.pipeline.service import NewRevision, NewRun, RunService
from consensus_engine.pipeline.stages import Pipeline, StageSettings
from consensus_engine.pipeline.work import Thresholds

SETTINGS = StageSettings(
    thresholds=Thresholds(approve=0.8, revise=0.6, quorum=None),
    retries=RetryPolicy(max_retries=3, initial_backoff=0.1, multiplier=2.0, max_backoff=2.0),
    stale_after=30.0,
    working_limit=60.0,
)


@pytest.fixture
def pipeline(db_session: Session, db_engine: Engine) -> Iterator[tuple[Pipeline, RunService]]:
    sessions = session_factory(db_engine)
    with (
        OfflineLLMServer(seed=3) as server,
        LLMClient(api_key="offline", base_url=server.base_url, timeout_seconds=10) as llm,
    ):
        service = RunService(sessions, lambda _jobs: None, job_timeout_seconds=300)
        yield Pipeline(sessions, llm, SETTINGS), service


def run_to_end(pipeline: Pipeline, job: Job) -> None:
    """Run ``job`` and every job that follows it, one after another."""
    outcome = pipeline.run(job, holder=f"w-{job.step_name}")
    assert outcome.kind is OutcomeKind.DONE, outcome
    for follow_up in outcome.follow_ups:
        run_to_end(pipeline, follow_up)


def test_data_the_database_refuses_fails_at_once_with_a_safe_message(
    pipeline: tuple[Pipeline, RunService],
) -> None:
    stages, service = pipeline
    choice = ModelChoice("offline", 0.2)
    parent = service.submit(NewRun("A repair-slot booking site.", DEFAULT_PERSONAS, choice, choice))
    run_to_end(stages, Job(Stage.EXPAND, parent.run.id, Priority.NORMAL))

    # JSON text whose parsed value holds a NUL: fine to store as text, refused by JSONB
    # once the edit is applied. (The API refuses it at the edge; the worker must cope.)
    secret = "the-secret-proposal-text"
    smuggled = '{"summary": "' + secret + '\\u0000"}'
    revision = service.revise(parent.run.id, NewRevision(edited_proposal=smuggled)).run.id

    outcome = stages.run(Job(Stage.EXPAND, revision, Priority.NORMAL), holder="w-revision")

    assert outcome.kind is OutcomeKind.FAILED, outcome  # not retried: it would fail again
    with service.sessions() as session:
        run = reads.get_run(session, revision, tenant=None, detailed=True)
        assert run is not None
        assert run.status is RunStatus.FAILED
        assert run.error_code == "data_error"
        stored = [run.error or "", *(step.error or "" for step in run.steps), outcome.reason or ""]
    for text in stored:
        for leak in ("SQL", "INSERT", "proposal_versions", secret, "\\u0000", "psycopg2"):
            assert leak not in text, (leak, text)
    assert "DataError" in (run.error or "")
