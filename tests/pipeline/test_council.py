"""The council on real components: two offline LLM servers as two providers, worker
processes, the emulator and PostgreSQL.

The panel is the five default personas; the critic and the security guardian review with a
model the ``local`` provider serves, the others with one the default provider serves, and
the chair writes with a third model. Every model is free, so no price is needed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from support.stack import PipelineStack, StackFactory

from consensus_engine.db.models import ChairReport, LlmCall, PersonaReview, StepProgress
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.devtools.process import free_port
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.council import Council
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.runs import (
    Job,
    Priority,
    RunStatus,
    Stage,
    StepStatus,
    debate_step,
    review_step,
)
from consensus_engine.jobs import send_jobs

HOSTED, LOCAL, CHAIR = "offline-hosted", "offline-local", "offline-chair"
ON_LOCAL = ("critic", "security_guardian")
PANEL = DEFAULT_PERSONAS.with_models(dict.fromkeys(ON_LOCAL, LOCAL))


def council_env(local_url: str, *, chair_url: str | None = None, **extra: str) -> dict[str, str]:
    """The models and providers: ``local`` serves LOCAL; CHAIR goes to ``chairs`` when
    ``chair_url`` is given, else to the default provider with HOSTED."""
    providers = {"local": {"base_url": local_url}}
    catalogue: dict[str, dict[str, object]] = {
        HOSTED: {"free": True},
        LOCAL: {"free": True, "provider": "local"},
        CHAIR: {"free": True},
    }
    if chair_url is not None:
        providers["chairs"] = {"base_url": chair_url}
        catalogue[CHAIR]["provider"] = "chairs"
    return {
        "EXPAND_MODEL": HOSTED,
        "REVIEW_MODEL": HOSTED,
        "MODEL_CATALOGUE_JSON": json.dumps(catalogue),
        "LLM_PROVIDERS_JSON": json.dumps(providers),
        **extra,
    }


@pytest.fixture
def local_server() -> Iterator[OfflineLLMServer]:
    with OfflineLLMServer(latency_ms=50) as server:
        yield server


def nowhere() -> str:
    """The base URL of a provider that is down: nothing listens there."""
    return f"http://127.0.0.1:{free_port()}/v1"


def steps(stack: PipelineStack, run_id: uuid.UUID) -> dict[str, StepProgress]:
    with stack.sessions() as session:
        rows = session.scalars(sa.select(StepProgress).where(StepProgress.run_id == run_id))
        return {row.step_name: row for row in rows}


def reviews(stack: PipelineStack, run_id: uuid.UUID) -> dict[str, PersonaReview]:
    with stack.sessions() as session:
        rows = session.scalars(sa.select(PersonaReview).where(PersonaReview.run_id == run_id))
        return {row.persona_id: row for row in rows}


def chair_report(stack: PipelineStack, run_id: uuid.UUID) -> ChairReport | None:
    with stack.sessions() as session:
        return session.scalar(sa.select(ChairReport).where(ChairReport.run_id == run_id))


def test_each_persona_is_reviewed_by_its_provider_and_the_chair_by_a_third_model(
    make_stack: StackFactory, local_server: OfflineLLMServer
) -> None:
    stack = make_stack(env=council_env(local_server.base_url, CHAIR_MODEL=CHAIR))
    stack.start_worker()

    run = stack.wait_for(stack.submit(personas=PANEL))

    assert run.status is RunStatus.COMPLETED, run.error
    # The servers' own counters: each saw only its own models.
    assert local_server.stats()["models"] == {LOCAL: len(ON_LOCAL)}
    assert stack.llm.stats()["models"] == {HOSTED: 1 + len(PANEL) - len(ON_LOCAL), CHAIR: 1}
    written = {pid: (row.model, row.provider) for pid, row in reviews(stack, run.id).items()}
    assert written == {
        p.id: (LOCAL, "local") if p.id in ON_LOCAL else (HOSTED, "default") for p in PANEL
    }
    assert {(c.step, c.model, c.provider) for c in run.llm_calls} >= {
        (review_step("critic"), LOCAL, "local"),
        ("chair", CHAIR, "default"),
    }
    report = chair_report(stack, run.id)
    assert report is not None and (report.model, report.fallback) == (CHAIR, False)
    assert report.report["summary"]
    assert steps(stack, run.id)["chair"].status is StepStatus.COMPLETED


def test_a_provider_that_is_down_fails_only_its_personas_with_its_error(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(env=council_env(nowhere(), REVIEW_QUORUM="3", MAX_RETRIES_PER_PERSONA="0"))
    stack.start_worker()

    run = stack.wait_for(stack.submit(personas=PANEL))

    assert run.status is RunStatus.COMPLETED, run.error
    assert run.decision_record is not None
    assert sorted(run.decision_record.decision_json["missing_personas"]) == sorted(ON_LOCAL)
    by_name = steps(stack, run.id)
    for persona in PANEL:
        step = by_name[review_step(persona.id)]
        if persona.id in ON_LOCAL:
            assert step.status is StepStatus.FAILED
            assert step.error is not None
            assert "Could not connect to LLM provider local" in step.error
        else:
            assert step.status is StepStatus.COMPLETED
    assert stack.llm.stats()["models"].get(LOCAL) is None


def test_with_quorum_unmet_the_run_fails_and_names_the_provider(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(env=council_env(nowhere(), REVIEW_QUORUM="4", MAX_RETRIES_PER_PERSONA="0"))
    stack.start_worker()

    run = stack.wait_for(stack.submit(personas=PANEL))

    assert run.status is RunStatus.FAILED
    assert run.error_code == "quorum_not_met"
    assert run.error is not None and "provider local" in run.error


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_second_round_writes_one_final_review_per_persona_despite_duplicates_and_a_kill(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(
        env={"REVIEW_ROUNDS": "2", "WORKER_CLAIM_TIMEOUT_SECONDS": "3"}, latency_ms=1500
    )
    worker = stack.start_worker(processes=1, threads=8)
    run_id = stack.submit()
    debates = [debate_step(p.id) for p in DEFAULT_PERSONAS]

    def debating() -> bool:
        return any(steps(stack, run_id)[name].status is StepStatus.RUNNING for name in debates)

    wait_until(debating)
    # Every debate message delivered again while the round runs, then the worker killed.
    again = [Job(Stage.DEBATE, run_id, Priority.NORMAL, p.id) for p in DEFAULT_PERSONAS]
    send_jobs(stack.broker, stack.settings, again)
    worker.kill()
    stack.start_worker(processes=1, threads=8)

    run = stack.wait_for(run_id, timeout=120)

    assert run.status is RunStatus.COMPLETED, run.error
    assert run.decision_record is not None
    by_name = steps(stack, run_id)
    rows = reviews(stack, run_id)
    assert sorted(rows) == sorted(p.id for p in DEFAULT_PERSONAS)
    scores = run.decision_record.decision_json["score_breakdown"]["individual_scores"]
    for persona in DEFAULT_PERSONAS:
        row, debate = rows[persona.id], by_name[debate_step(persona.id)]
        first = by_name[review_step(persona.id)].step_metadata["confidence_score"]
        assert debate.status is StepStatus.COMPLETED
        # The first round is the one the review step wrote, never a re-run debate's input.
        assert row.first_round_review is not None
        assert row.first_round_review["confidence_score"] == first
        assert debate.step_metadata["first_round_score"] == first
        # Aggregation used the final round.
        assert debate.step_metadata["confidence_score"] == row.confidence_score
        assert scores[persona.id] == pytest.approx(row.confidence_score)
    assert stack.row_counts(run_id)["persona_reviews"] == len(DEFAULT_PERSONAS)


def test_a_failed_chair_leaves_the_run_completed_and_retry_runs_it_again(
    make_stack: StackFactory, local_server: OfflineLLMServer
) -> None:
    chair_port = free_port()
    chair_url = f"http://127.0.0.1:{chair_port}/v1"
    stack = make_stack(
        env=council_env(
            local_server.base_url,
            chair_url=chair_url,
            CHAIR_MODEL=CHAIR,
            MAX_RETRIES_PER_PERSONA="0",
        )
    )
    stack.start_worker()

    run = stack.wait_for(stack.submit())

    assert run.status is RunStatus.COMPLETED
    assert run.error is None and run.decision_record is not None
    decided = run.decision_record.decision_json
    chair = steps(stack, run.id)["chair"]
    assert chair.status is StepStatus.FAILED
    assert chair.error is not None and "provider chairs" in chair.error
    assert chair_report(stack, run.id) is None

    # The same run, with a fallback model on the default provider, is chaired by it.
    fallback = Council(chair=ModelChoice(CHAIR, None), chair_fallback=HOSTED)
    helped = stack.wait_for(stack.submit(council=fallback))
    report = chair_report(stack, helped.id)
    assert report is not None and (report.model, report.fallback) == (HOSTED, True)

    # The chair's provider comes back: retry runs the chair alone.
    with OfflineLLMServer(port=chair_port) as chairs:
        stack.service().retry(run.id)
        retried = stack.wait_for(run.id)
        assert chairs.stats()["models"] == {CHAIR: 1}
    assert retried.status is RunStatus.COMPLETED and retried.decision_record is not None
    assert steps(stack, run.id)["chair"].status is StepStatus.COMPLETED
    assert retried.decision_record.decision_json == decided
    report = chair_report(stack, run.id)
    assert report is not None and report.model == CHAIR
    with stack.sessions() as session:
        calls = session.scalars(sa.select(LlmCall.step).where(LlmCall.run_id == run.id)).all()
    assert calls.count("expand") == 1  # nothing but the chair ran again
