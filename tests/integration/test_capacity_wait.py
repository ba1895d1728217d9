"""A step whose model's shared rate limit has no room is handed back, not failed: against
real PostgreSQL (the limiter's row and the step's claim) and the offline LLM over HTTP.

No broker: the test plays the dispatcher, delivering each stage by hand with the retries
its message would carry.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload, sessionmaker

from consensus_engine.db.engine import session_factory
from consensus_engine.db.models import Run
from consensus_engine.db.rate_limits import DatabaseBuckets
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.runs import Job, Priority, Stage, StepStatus, review_step
from consensus_engine.llm import LLMClient
from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.llm.rate_limits import RateLimitGate
from consensus_engine.pipeline.outcome import OutcomeKind, StageOutcome
from consensus_engine.pipeline.retries import CAPACITY_JITTER, RetryPolicy
from consensus_engine.pipeline.service import NewRun, RunService
from consensus_engine.pipeline.stages import Pipeline, StageSettings
from consensus_engine.pipeline.work import Thresholds
from consensus_engine.settings import load_settings

EXPAND, REVIEW = "offline-expand", "offline-review"
MAX_RETRIES = 3
FIRST, SECOND = DEFAULT_PERSONAS.ids[:2]


@pytest.fixture
def llm_server() -> Iterator[OfflineLLMServer]:
    with OfflineLLMServer(seed=7) as server:
        yield server


@pytest.fixture
def pipeline(
    db_session: Session, db_engine: Engine, llm_server: OfflineLLMServer
) -> Iterator[Pipeline]:
    """Reviews limited to one request a second; a caller never waits here for room."""
    catalogue = {EXPAND: {"free": True}, REVIEW: {"free": True, "rpm": 60}}
    settings = load_settings(
        model_catalogue_json=json.dumps(catalogue), expand_model=EXPAND, review_model=REVIEW
    )
    buckets = DatabaseBuckets(db_engine)
    gate = RateLimitGate(buckets, ModelCatalogue.from_settings(settings))
    llm = LLMClient(api_key="offline", base_url=llm_server.base_url, gate=gate)
    stage_settings = StageSettings(
        thresholds=Thresholds(approve=0.8, revise=0.6, quorum=None),
        retries=RetryPolicy(MAX_RETRIES, initial_backoff=0.1, multiplier=2.0, max_backoff=2.0),
        stale_after=30.0,
        working_limit=60.0,
    )
    try:
        yield Pipeline(session_factory(db_engine), llm, stage_settings)
    finally:
        llm.close()
        buckets.close()


def submit(sessions: sessionmaker[Session]) -> uuid.UUID:
    service = RunService(sessions, send=lambda jobs: None, job_timeout_seconds=300)
    new = NewRun(
        idea="A tool library for one street.",
        personas=DEFAULT_PERSONAS,
        expand=ModelChoice(EXPAND, 0.7),
        review=ModelChoice(REVIEW, 0.2),
    )
    return service.submit(new).run.id


def deliver(pipeline: Pipeline, job: Job, holder: str) -> StageOutcome:
    """The message's last try: any retry that counted would fail the step for good."""
    return pipeline.run(job, holder=holder, retries=MAX_RETRIES)


def load(sessions: sessionmaker[Session], run_id: uuid.UUID) -> Run:
    with sessions() as session:
        run = session.get(
            Run, run_id, options=[selectinload(Run.steps), selectinload(Run.llm_calls)]
        )
        assert run is not None
        return run


def test_no_room_hands_the_step_back_without_spending_a_retry(
    pipeline: Pipeline, llm_server: OfflineLLMServer
) -> None:
    sessions = pipeline.sessions
    run_id = submit(sessions)
    assert deliver(pipeline, Job(Stage.EXPAND, run_id, Priority.NORMAL), "w1").kind is (
        OutcomeKind.DONE
    )
    first = Job(Stage.REVIEW, run_id, Priority.NORMAL, FIRST)
    second = Job(Stage.REVIEW, run_id, Priority.NORMAL, SECOND)
    assert deliver(pipeline, first, "w2") == StageOutcome.done()  # the second's room, taken

    waiting = deliver(pipeline, second, "w3")

    assert waiting.kind is OutcomeKind.RETRY and not waiting.spends_retry
    assert waiting.retry_after is not None and 0.5 < waiting.retry_after <= 1.1 + CAPACITY_JITTER
    run = load(sessions, run_id)
    step = next(s for s in run.steps if s.step_name == review_step(SECOND))
    assert (step.status, step.claimed_by, step.attempts) == (StepStatus.PENDING, None, 0)
    assert step.error is not None and "rate limit of offline-review" in step.error
    assert not [call for call in run.llm_calls if call.step == step.step_name]
    assert llm_server.stats()["total"] == 2  # the expand and the first review

    time.sleep(waiting.retry_after)
    assert deliver(pipeline, second, "w4") == StageOutcome.done()
    step = next(s for s in load(sessions, run_id).steps if s.step_name == step.step_name)
    assert (step.status, step.attempts, step.error) == (StepStatus.COMPLETED, 1, None)
