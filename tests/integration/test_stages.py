"""The pipeline stages called directly, as a worker thread would, against real PostgreSQL
and the offline LLM over HTTP.

No broker is involved: each test plays the dispatcher, passing explicit holder strings
and sending "what comes next" by hand, so duplicate, late and concurrent deliveries can
be staged exactly.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload, sessionmaker

from consensus_engine.db import claims
from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.db.migrations import upgrade_head
from consensus_engine.db.models import (
    DecisionRecord,
    LlmCall,
    LlmCallOutcome,
    PersonaReview,
    ProposalSource,
    Run,
    StepProgress,
)
from consensus_engine.db.types import utcnow
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.runs import (
    AGGREGATE_STEP,
    EXPAND_STEP,
    RunStatus,
    StepStatus,
    review_step,
)
from consensus_engine.llm import LLMClient
from consensus_engine.llm.errors import LLMServerError
from consensus_engine.llm.offline import OfflineLLMServer
from consensus_engine.pipeline.inline import ModelChoice
from consensus_engine.pipeline.stages import Pipeline, StageResult, StageSettings
from consensus_engine.pipeline.submit import submit_revision, submit_run

IDEA = "Let people book a bike repair slot online and get a text when it is ready."
PERSONAS = DEFAULT_PERSONAS.ids
SETTINGS = StageSettings(
    approve_threshold=0.8, revise_threshold=0.6, review_quorum=None, stale_after=30.0
)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _llm_server() -> Iterator[OfflineLLMServer]:
    with OfflineLLMServer(seed=7) as server:
        yield server


@pytest.fixture
def llm_server(_llm_server: OfflineLLMServer) -> OfflineLLMServer:
    """The module's server with no queued faults and zeroed statistics."""
    _llm_server.reset()
    return _llm_server


@pytest.fixture(scope="module")
def llm(_llm_server: OfflineLLMServer) -> Iterator[LLMClient]:
    with LLMClient(api_key="offline", base_url=_llm_server.base_url, timeout_seconds=10) as client:
        yield client


@pytest.fixture
def sessions(db_session: Session, db_engine: Engine) -> sessionmaker[Session]:
    """Sessions on the migrated database; asking for ``db_session`` empties it afterwards."""
    return session_factory(db_engine)


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline(
    sessions: sessionmaker[Session], llm: LLMClient, llm_server: OfflineLLMServer
) -> PipelineFactory:
    """``make_pipeline(**StageSettings overrides)``; the LLM server is reset first."""

    def make(**overrides: Any) -> Pipeline:
        return Pipeline(sessions, llm, replace(SETTINGS, **overrides))

    return make


@pytest.fixture
def pipeline(make_pipeline: PipelineFactory) -> Pipeline:
    return make_pipeline()


# -- helpers ----------------------------------------------------------------------------------


def submit(sessions: sessionmaker[Session]) -> uuid.UUID:
    with sessions.begin() as session:
        run = submit_run(
            session,
            idea=IDEA,
            personas=DEFAULT_PERSONAS,
            expand=ModelChoice("offline-expand", 0.7),
            review=ModelChoice("offline-review", 0.2),
            job_timeout_seconds=300,
        )
        return run.id


def load(sessions: sessionmaker[Session], run_id: uuid.UUID) -> Run:
    """The run as stored now, with everything a test asserts on loaded."""
    with sessions() as session:
        run = session.scalar(
            sa.select(Run)
            .where(Run.id == run_id)
            .options(
                selectinload(Run.steps),
                selectinload(Run.reviews),
                selectinload(Run.llm_calls),
                selectinload(Run.decision_record),
                selectinload(Run.proposal),
            )
        )
        assert run is not None
        return run


def steps(run: Run) -> dict[str, StepProgress]:
    return {step.step_name: step for step in run.steps}


def requests(server: OfflineLLMServer) -> int:
    """Generation requests the LLM server received since the test began."""
    return int(server.stats()["total"])


def update_run(sessions: sessionmaker[Session], run_id: uuid.UUID, **values: Any) -> None:
    with sessions.begin() as session:
        session.execute(sa.update(Run).where(Run.id == run_id).values(**values))


def snapshot(sessions: sessionmaker[Session], run_id: uuid.UUID) -> dict[str, Any]:
    """Everything a stage could write, to prove a skipped stage wrote nothing."""
    run = load(sessions, run_id)
    return {
        "run": (run.status, run.updated_at, run.input_tokens, run.attempts),
        "steps": {
            s.step_name: (s.status, s.attempts, s.claimed_by, s.updated_at) for s in run.steps
        },
        "reviews": len(run.reviews),
        "calls": len(run.llm_calls),
    }


def review_all(pipeline: Pipeline, run_id: uuid.UUID, personas: tuple[str, ...]) -> StageResult:
    """Run the reviews one after another; the last result (the barrier's answer)."""
    result = StageResult()
    for persona_id in personas:
        result = pipeline.review(run_id, persona_id, holder=f"w-{persona_id}", final_attempt=False)
    return result


def complete(pipeline: Pipeline, run_id: uuid.UUID) -> None:
    expanded = pipeline.expand(run_id, holder="w-expand", final_attempt=False)
    assert review_all(pipeline, run_id, expanded.reviews).aggregate
    assert pipeline.aggregate(run_id, holder="w-aggregate", final_attempt=False).failed is None


# -- the happy path ---------------------------------------------------------------------------


def test_stages_say_what_to_send_next_and_complete_the_run(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    run_id = submit(sessions)

    expanded = pipeline.expand(run_id, holder="w1", final_attempt=False)
    assert expanded == StageResult(reviews=PERSONAS)
    assert load(sessions, run_id).status is RunStatus.RUNNING

    asks = [
        pipeline.review(run_id, p, holder=f"w-{p}", final_attempt=False).aggregate for p in PERSONAS
    ]
    assert asks == [False] * 4 + [True]

    assert pipeline.aggregate(run_id, holder="w2", final_attempt=False) == StageResult()

    run = load(sessions, run_id)
    assert run.status is RunStatus.COMPLETED and run.error_code is None
    assert run.completed_at is not None
    assert {s.status for s in run.steps} == {StepStatus.COMPLETED}
    assert run.decision_record is not None
    assert run.decision is run.decision_record.decision
    assert run.overall_score == run.decision_record.overall_score
    assert run.decision_record.decision_json["missing_personas"] == []
    assert sorted(r.persona_id for r in run.reviews) == sorted(PERSONAS)
    assert not any(r.reused for r in run.reviews)
    assert run.proposal is not None and run.proposal.source is ProposalSource.EXPANDED

    assert len(run.llm_calls) == 6 == requests(llm_server)
    assert {c.outcome for c in run.llm_calls} == {LlmCallOutcome.SUCCESS}
    assert run.input_tokens == sum(c.input_tokens for c in run.llm_calls) > 0
    assert run.output_tokens == sum(c.output_tokens for c in run.llm_calls) > 0
    assert run.cost_usd == sum((c.cost_usd for c in run.llm_calls), Decimal(0))


def test_a_duplicate_delivery_is_skipped_without_writing_or_calling_the_llm(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    run_id = submit(sessions)
    pipeline.expand(run_id, holder="w1", final_attempt=False)
    pipeline.review(run_id, "critic", holder="w2", final_attempt=False)
    before, calls = snapshot(sessions, run_id), requests(llm_server)

    assert pipeline.expand(run_id, holder="w3", final_attempt=False) == StageResult(skipped="done")
    again = pipeline.review(run_id, "critic", holder="w4", final_attempt=True)
    assert again == StageResult(skipped="done")

    assert snapshot(sessions, run_id) == before
    assert requests(llm_server) == calls

    # Once the run has ended, every late message is dropped too.
    review_all(pipeline, run_id, tuple(p for p in PERSONAS if p != "critic"))
    pipeline.aggregate(run_id, holder="w5", final_attempt=False)
    ended, calls = snapshot(sessions, run_id), requests(llm_server)
    for result in (
        pipeline.expand(run_id, holder="w6", final_attempt=False),
        pipeline.review(run_id, "critic", holder="w6", final_attempt=False),
        pipeline.aggregate(run_id, holder="w6", final_attempt=False),
    ):
        assert result == StageResult(skipped="run_ended")
    assert snapshot(sessions, run_id) == ended
    assert requests(llm_server) == calls


# -- claims -----------------------------------------------------------------------------------


def test_a_held_step_waits_until_its_claim_goes_stale_then_the_late_holder_loses(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    run_id = submit(sessions)
    with sessions.begin() as session:
        claim = claims.claim_step(
            session, run_id, EXPAND_STEP, holder="A", stale_after=SETTINGS.stale_after
        )
        assert claim.claimed and claim.job_started

    held = pipeline.expand(run_id, holder="B", final_attempt=False)
    assert held.skipped == "held elsewhere" and held.reviews == ()
    assert held.check_again_in is not None
    assert 0 < held.check_again_in <= SETTINGS.stale_after
    assert requests(llm_server) == 0
    assert steps(load(sessions, run_id))[EXPAND_STEP].claimed_by == "A"

    # A goes silent: its claim's last progress is older than stale_after.
    silent_since = utcnow() - timedelta(seconds=SETTINGS.stale_after + 1)
    with sessions.begin() as session:
        session.execute(
            sa.update(StepProgress)
            .where(StepProgress.run_id == run_id, StepProgress.step_name == EXPAND_STEP)
            .values(updated_at=silent_since)
        )

    taken_over = pipeline.expand(run_id, holder="B", final_attempt=False)
    assert taken_over.reviews == PERSONAS
    assert requests(llm_server) == 1
    expand = steps(load(sessions, run_id))[EXPAND_STEP]
    assert (expand.status, expand.claimed_by, expand.attempts) == (StepStatus.COMPLETED, "B", 2)

    with sessions.begin() as session:  # A wakes up and tries to settle its result
        assert claims.reclaim(session, run_id, EXPAND_STEP, holder="A") is None


def test_concurrent_and_duplicate_reviews_pass_the_barrier_exactly_once(
    database_url: str,
    db_session: Session,
    llm: LLMClient,
    llm_server: OfflineLLMServer,
) -> None:
    """Ten deliveries at once, two per persona: one LLM call per persona, one aggregate.

    The duplicate of a persona can never call the LLM as well: claiming commits the step
    as running (with the run row locked) before the call, so the second delivery sees it
    held, or done if the first already settled.
    """
    engine = create_engine_from_url(database_url, pool_size=12, max_overflow=0)
    try:
        sessions = session_factory(engine)
        pipeline = Pipeline(sessions, llm, SETTINGS)
        run_id = submit(sessions)
        pipeline.expand(run_id, holder="w-expand", final_attempt=False)

        deliveries = [(p, copy) for p in PERSONAS for copy in ("a", "b")]
        start = threading.Barrier(len(deliveries))

        def deliver(persona_id: str, copy: str) -> StageResult:
            start.wait(timeout=30)
            return pipeline.review(
                run_id, persona_id, holder=f"{persona_id}-{copy}", final_attempt=False
            )

        with ThreadPoolExecutor(max_workers=len(deliveries)) as pool:
            futures = {d: pool.submit(deliver, *d) for d in deliveries}
            results = {d: f.result(timeout=60) for d, f in futures.items()}

        assert sum(r.aggregate for r in results.values()) == 1
        for persona_id in PERSONAS:
            pair = [results[persona_id, "a"], results[persona_id, "b"]]
            done = [r for r in pair if r.skipped is None]
            dropped = [r for r in pair if r.skipped is not None]
            assert len(done) == 1, pair
            assert dropped[0].skipped in ("held elsewhere", "done"), pair
            assert not dropped[0].aggregate
        assert requests(llm_server) == 1 + len(PERSONAS)

        run = load(sessions, run_id)
        assert len(run.reviews) == len(PERSONAS)
        assert [c.step for c in run.llm_calls].count(EXPAND_STEP) == 1
        assert len(run.llm_calls) == 1 + len(PERSONAS)
        assert all(steps(run)[review_step(p)].attempts == 1 for p in PERSONAS)
        assert steps(run)[AGGREGATE_STEP].status is StepStatus.PENDING

        assert pipeline.aggregate(run_id, holder="w-agg", final_attempt=False).failed is None
        assert load(sessions, run_id).status is RunStatus.COMPLETED
    finally:
        engine.dispose()


# -- failures ---------------------------------------------------------------------------------


def test_a_retryable_failure_hands_the_step_back_and_reraises(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    run_id = submit(sessions)
    pipeline.expand(run_id, holder="w1", final_attempt=False)
    llm_server.push_faults("500")

    with pytest.raises(LLMServerError):
        pipeline.review(run_id, "critic", holder="w2", final_attempt=False)

    run = load(sessions, run_id)
    step = steps(run)[review_step("critic")]
    assert (step.status, step.claimed_by, step.attempts) == (StepStatus.PENDING, None, 1)
    assert step.error is not None and "HTTP 500" in step.error
    failed = [c for c in run.llm_calls if c.step == review_step("critic")]
    assert [c.outcome for c in failed] == [LlmCallOutcome.SERVER_ERROR]
    assert run.status is RunStatus.RUNNING and run.reviews == []

    assert pipeline.review(run_id, "critic", holder="w3", final_attempt=False) == StageResult()
    run = load(sessions, run_id)
    step = steps(run)[review_step("critic")]
    assert (step.status, step.error, step.attempts) == (StepStatus.COMPLETED, None, 2)
    assert sorted(c.outcome for c in run.llm_calls if c.step == step.step_name) == [
        LlmCallOutcome.SERVER_ERROR,
        LlmCallOutcome.SUCCESS,
    ]
    assert [r.persona_id for r in run.reviews] == ["critic"]


def test_a_final_attempt_fails_the_step_and_the_last_one_still_opens_the_barrier(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    run_id = submit(sessions)
    pipeline.expand(run_id, holder="w1", final_attempt=False)
    llm_server.push_faults("500")
    first = pipeline.review(run_id, "critic", holder="w2", final_attempt=True)
    assert first.failed is not None and "HTTP 500" in first.failed
    assert not first.aggregate  # four reviews are still open

    last = review_all(pipeline, run_id, tuple(p for p in PERSONAS if p != "critic"))
    assert last.aggregate

    run_id = submit(sessions)
    pipeline.expand(run_id, holder="w1", final_attempt=False)
    review_all(pipeline, run_id, tuple(p for p in PERSONAS if p != "critic"))
    llm_server.push_faults("500")
    final = pipeline.review(run_id, "critic", holder="w2", final_attempt=True)
    assert final.failed is not None and final.aggregate
    step = steps(load(sessions, run_id))[review_step("critic")]
    assert step.status is StepStatus.FAILED and step.error == final.failed


def test_a_permanent_review_failure_fails_at_once_without_raising(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    run_id = submit(sessions)
    pipeline.expand(run_id, holder="w1", final_attempt=False)
    llm_server.push_faults("401")

    result = pipeline.review(run_id, "critic", holder="w2", final_attempt=False)

    assert result.failed is not None and "HTTP 401" in result.failed
    run = load(sessions, run_id)
    assert steps(run)[review_step("critic")].status is StepStatus.FAILED
    assert run.status is RunStatus.RUNNING  # one review failing does not end the run
    assert [c.outcome for c in run.llm_calls if c.step == review_step("critic")] == [
        LlmCallOutcome.AUTH_ERROR
    ]


def test_a_permanent_expand_failure_fails_the_run_and_skips_the_rest(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    run_id = submit(sessions)
    llm_server.push_faults("401")

    result = pipeline.expand(run_id, holder="w1", final_attempt=False)

    assert result.failed is not None and result.reviews == ()
    run = load(sessions, run_id)
    assert (run.status, run.error_code) == (RunStatus.FAILED, "llm_auth")
    assert run.error is not None and run.error.startswith("expand: ")
    assert steps(run)[EXPAND_STEP].status is StepStatus.FAILED
    assert {s.status for s in run.steps if s.step_name != EXPAND_STEP} == {StepStatus.SKIPPED}
    assert requests(llm_server) == 1


# -- runs that must not move --------------------------------------------------------------------


def test_every_stage_of_a_cancelled_run_is_skipped(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    run_id = submit(sessions)
    update_run(sessions, run_id, status=RunStatus.CANCELLED)
    before = snapshot(sessions, run_id)

    results = [
        pipeline.expand(run_id, holder="w", final_attempt=False),
        *(pipeline.review(run_id, p, holder="w", final_attempt=False) for p in PERSONAS),
        pipeline.aggregate(run_id, holder="w", final_attempt=False),
    ]

    assert set(results) == {StageResult(skipped="run_ended")}
    assert requests(llm_server) == 0
    assert snapshot(sessions, run_id) == before


def test_a_run_past_its_deadline_fails_with_timeout(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    run_id = submit(sessions)
    update_run(sessions, run_id, deadline_at=utcnow() - timedelta(seconds=1))

    result = pipeline.expand(run_id, holder="w", final_attempt=False)

    assert result.skipped is not None and result.reviews == ()
    run = load(sessions, run_id)
    assert (run.status, run.error_code) == (RunStatus.FAILED, "timeout")
    assert {s.status for s in run.steps} == {StepStatus.SKIPPED}
    assert requests(llm_server) == 0


# -- quorum -------------------------------------------------------------------------------------


@pytest.mark.parametrize("quorum", [4, None])
def test_the_quorum_decides_whether_a_failed_review_blocks_the_decision(
    quorum: int | None,
    make_pipeline: PipelineFactory,
    sessions: sessionmaker[Session],
    llm_server: OfflineLLMServer,
) -> None:
    pipeline = make_pipeline(review_quorum=quorum)
    run_id = submit(sessions)
    pipeline.expand(run_id, holder="w1", final_attempt=False)
    llm_server.push_faults("401")
    assert pipeline.review(run_id, "critic", holder="w2", final_attempt=False).failed
    assert review_all(pipeline, run_id, tuple(p for p in PERSONAS if p != "critic")).aggregate

    result = pipeline.aggregate(run_id, holder="w3", final_attempt=False)

    run = load(sessions, run_id)
    if quorum == 4:
        assert result == StageResult()
        assert run.status is RunStatus.COMPLETED and run.decision is not None
        assert run.decision_record is not None
        assert run.decision_record.decision_json["missing_personas"] == ["critic"]
        assert steps(run)[AGGREGATE_STEP].step_metadata["missing"] == ["critic"]
    else:
        assert result.failed is not None and "critic" in result.failed
        assert (run.status, run.error_code) == (RunStatus.FAILED, "quorum_not_met")
        assert run.decision is None and run.decision_record is None
        assert steps(run)[AGGREGATE_STEP].status is StepStatus.FAILED


# -- revisions ----------------------------------------------------------------------------------


def _revise(sessions: sessionmaker[Session], parent_id: uuid.UUID, **options: Any) -> uuid.UUID:
    with sessions.begin() as session:
        parent = session.get_one(Run, parent_id)
        return submit_revision(session, parent, job_timeout_seconds=300, **options).id


def test_a_revision_reruns_the_chosen_persona_and_reuses_the_other_reviews(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    parent_id = submit(sessions)
    complete(pipeline, parent_id)
    revision_id = _revise(sessions, parent_id, rerun_personas=["critic"])
    calls = requests(llm_server)

    result = pipeline.expand(revision_id, holder="w1", final_attempt=False)

    assert result == StageResult(reviews=("critic",))
    assert requests(llm_server) == calls  # no edits and no notes: nothing to ask the LLM
    run = load(sessions, revision_id)
    reused = {r.persona_id: r for r in run.reviews}
    assert sorted(reused) == sorted(p for p in PERSONAS if p != "critic")
    assert all(r.reused and r.source_run_id == parent_id for r in reused.values())
    for persona_id in reused:
        step = steps(run)[review_step(persona_id)]
        assert step.status is StepStatus.COMPLETED
        assert step.step_metadata["reused"] is True
        assert step.step_metadata["source_run_id"] == str(parent_id)
    assert steps(run)[review_step("critic")].status is StepStatus.PENDING

    assert pipeline.review(revision_id, "critic", holder="w2", final_attempt=False).aggregate
    assert pipeline.aggregate(revision_id, holder="w3", final_attempt=False).failed is None
    run = load(sessions, revision_id)
    assert run.status is RunStatus.COMPLETED
    critic = next(r for r in run.reviews if r.persona_id == "critic")
    assert not critic.reused and critic.source_run_id is None


def test_a_revision_whose_parent_was_deleted_fails_at_once_with_the_cause(
    pipeline: Pipeline, sessions: sessionmaker[Session]
) -> None:
    parent_id = submit(sessions)
    complete(pipeline, parent_id)
    revision_id = _revise(sessions, parent_id)
    with sessions.begin() as session:
        session.delete(session.get_one(Run, parent_id))

    result = pipeline.expand(revision_id, holder="w1", final_attempt=False)

    assert result.failed is not None and "parent run no longer exists" in result.failed
    run = load(sessions, revision_id)
    assert run.status is RunStatus.FAILED
    assert run.error_code == "stage_input_error"
    assert steps(run)[EXPAND_STEP].status is StepStatus.FAILED


def test_an_edited_title_is_stored_verbatim_with_its_diff_and_no_llm_call(
    pipeline: Pipeline, sessions: sessionmaker[Session], llm_server: OfflineLLMServer
) -> None:
    parent_id = submit(sessions)
    complete(pipeline, parent_id)
    parent = load(sessions, parent_id)
    assert parent.proposal is not None
    old_title = parent.proposal.proposal["title"]
    revision_id = _revise(sessions, parent_id, edited_proposal={"title": "New title"})
    calls = requests(llm_server)

    result = pipeline.expand(revision_id, holder="w1", final_attempt=False)

    assert requests(llm_server) == calls
    run = load(sessions, revision_id)
    assert run.proposal is not None
    assert run.proposal.source is ProposalSource.EDITED
    assert run.proposal.proposal["title"] == "New title"
    assert run.proposal.diff == {
        "changed_fields": {"title": {"before": old_title, "after": "New title"}},
        "num_changes": 1,
    }
    plan = steps(run)[EXPAND_STEP].step_metadata["plan"]
    assert result.reviews == tuple(plan["rerun"])
    assert "critic" in result.reviews  # the critic reads every section, the title too
    assert sorted(r.persona_id for r in run.reviews) == sorted(plan["reused"])
    assert [c for c in run.llm_calls if c.step == EXPAND_STEP] == []


# -- SQLite -------------------------------------------------------------------------------------


def test_the_stages_complete_a_run_on_sqlite(
    sqlite_url: str, llm: LLMClient, llm_server: OfflineLLMServer
) -> None:
    """The demo's fallback database: same schema from the migrations, same flow."""
    upgrade_head(sqlite_url)
    engine = create_engine_from_url(sqlite_url)
    try:
        sessions = session_factory(engine)
        pipeline = Pipeline(sessions, llm, SETTINGS)
        run_id = submit(sessions)

        assert pipeline.expand(run_id, holder="w", final_attempt=False).reviews == PERSONAS
        assert review_all(pipeline, run_id, PERSONAS).aggregate
        assert pipeline.expand(run_id, holder="w", final_attempt=False).skipped == "done"
        assert pipeline.aggregate(run_id, holder="w", final_attempt=False) == StageResult()

        run = load(sessions, run_id)
        assert run.status is RunStatus.COMPLETED and run.decision is not None
        assert len(run.reviews) == len(PERSONAS) and len(run.llm_calls) == 6
        assert run.input_tokens == sum(c.input_tokens for c in run.llm_calls)
        with sessions() as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(DecisionRecord)) == 1
            assert session.scalar(sa.select(sa.func.count()).select_from(PersonaReview)) == 5
            assert session.scalar(sa.select(sa.func.count()).select_from(LlmCall)) == 6
    finally:
        engine.dispose()


def test_a_settled_step_restarts_the_sweepers_count_of_resumes(
    pipeline: Pipeline, sessions: sessionmaker[Session]
) -> None:
    run_id = submit(sessions)
    update_run(sessions, run_id, attempts=2)  # resumed twice without progress

    pipeline.expand(run_id, holder="w1", final_attempt=False)

    assert load(sessions, run_id).attempts == 0


def test_a_reused_review_keeps_the_model_that_wrote_it(
    pipeline: Pipeline, sessions: sessionmaker[Session]
) -> None:
    parent_id = submit(sessions)
    complete(pipeline, parent_id)
    parent_models = {r.persona_id: r.model for r in load(sessions, parent_id).reviews}
    revision_id = _revise(
        sessions, parent_id, rerun_personas=["critic"], review=ModelChoice("other-model", 0.1)
    )

    pipeline.expand(revision_id, holder="w1", final_attempt=False)

    reused = [r for r in load(sessions, revision_id).reviews if r.reused]
    assert len(reused) == 4
    assert all(r.model == parent_models[r.persona_id] != "other-model" for r in reused)
