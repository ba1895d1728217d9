"""The council's stages in one process, each message delivered by hand: PostgreSQL and the
offline LLM over HTTP are real; the broker is this test's list of jobs.

Driving the stages by hand shows the barrier's answers exactly: which stage each ending
opens, and that a late or repeated message changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db.models import ChairReport, LlmCall, PersonaReview, Run, StepProgress
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.council import Council
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.runs import Job, Priority, RunStatus, Stage, StepStatus
from consensus_engine.pipeline.outcome import OutcomeKind
from consensus_engine.pipeline.service import NewRevision, NewRun, RunService
from consensus_engine.pipeline.stages import Pipeline

PANEL = DEFAULT_PERSONAS.select(["architect", "critic", "optimist"])
COUNCIL = Council(rounds=2, chair=ModelChoice("offline-chair", 0.3))


def service(sessions: sessionmaker[Session]) -> RunService:
    return RunService(sessions, send=lambda jobs: None, job_timeout_seconds=300)


def submit(sessions: sessionmaker[Session], council: Council = COUNCIL) -> uuid.UUID:
    new = NewRun(
        idea="A shared bike trailer for a block of flats, booked by text message.",
        personas=PANEL,
        expand=ModelChoice("offline-expand", 0.7),
        review=ModelChoice("offline-review", 0.2),
        council=council,
    )
    return service(sessions).submit(new).run.id


def deliver(pipeline: Pipeline, first: Job) -> list[list[Job]]:
    """Run ``first`` and everything it sends, stage by stage; the jobs each wave sent."""
    waves: list[list[Job]] = []
    wave = [first]
    while wave:
        sent: list[Job] = []
        for job in wave:
            outcome = pipeline.run(job, holder=f"w-{job.step_name}")
            assert outcome.kind is OutcomeKind.DONE, outcome
            sent += outcome.follow_ups
        waves.append(sent)
        wave = sent
    return waves


def stored(sessions: sessionmaker[Session], run_id: uuid.UUID) -> tuple[Run, dict[str, Any]]:
    with sessions() as session:
        run = session.get_one(Run, run_id)
        steps = {
            s.step_name: (s.status, s.step_metadata)
            for s in session.scalars(sa.select(StepProgress).where(StepProgress.run_id == run_id))
        }
        session.expunge(run)
        return run, steps


def rows(sessions: sessionmaker[Session], model: type[Any], run_id: uuid.UUID) -> list[Any]:
    with sessions() as session:
        found = list(session.scalars(sa.select(model).where(model.run_id == run_id)))
        session.expunge_all()
        return found


@pytest.fixture
def run_id(sessions: sessionmaker[Session]) -> Iterator[uuid.UUID]:
    yield submit(sessions)


def test_each_ending_opens_the_next_stage_once(
    pipeline: Pipeline,
    sessions: sessionmaker[Session],
    run_id: uuid.UUID,
) -> None:
    waves = deliver(pipeline, Job(Stage.EXPAND, run_id, Priority.NORMAL))

    stages = [sorted({job.step_name for job in wave}) for wave in waves]
    assert stages == [
        [f"review_{p}" for p in sorted(PANEL.ids)],
        [f"debate_{p}" for p in sorted(PANEL.ids)],
        ["aggregate"],
        ["chair"],
        [],
    ]
    run, steps = stored(sessions, run_id)
    assert run.status is RunStatus.COMPLETED
    assert all(status is StepStatus.COMPLETED for status, _ in steps.values())
    # Every message once more, late: nothing runs, nothing is sent.
    for wave in waves[:-1]:
        for job in wave:
            again = pipeline.run(job, holder="late")
            assert again.kind is OutcomeKind.SKIPPED and again.follow_ups == ()
    assert len(rows(sessions, ChairReport, run_id)) == 1
    calls = [call.step for call in rows(sessions, LlmCall, run_id)]
    assert sorted(calls) == sorted(
        ["expand", "chair", *(f"{stage}_{p}" for stage in ("review", "debate") for p in PANEL.ids)]
    )


def test_a_revision_reuses_final_reviews_debates_its_reruns_and_chairs_again(
    pipeline: Pipeline,
    sessions: sessionmaker[Session],
    run_id: uuid.UUID,
) -> None:
    deliver(pipeline, Job(Stage.EXPAND, run_id, Priority.NORMAL))
    parent = {r.persona_id: r for r in rows(sessions, PersonaReview, run_id)}
    revision = service(sessions).revise(
        run_id, NewRevision(rerun_personas=("critic",), review_model="offline-other")
    )
    revision_id = revision.run.id

    waves = deliver(pipeline, Job(Stage.EXPAND, revision_id, Priority.NORMAL))

    assert [sorted(job.step_name for job in wave) for wave in waves] == [
        ["review_critic"],
        ["debate_critic"],
        ["aggregate"],
        ["chair"],
        [],
    ]
    run, steps = stored(sessions, revision_id)
    assert run.status is RunStatus.COMPLETED
    assert steps["debate_architect"][0] is StepStatus.SKIPPED  # reused: already final
    reviews = {r.persona_id: r for r in rows(sessions, PersonaReview, revision_id)}
    for persona_id in ("architect", "optimist"):
        reused, before = reviews[persona_id], parent[persona_id]
        assert reused.reused and (reused.model, reused.provider) == (before.model, "default")
        assert reused.review == before.review  # the parent's final review
    critic = reviews["critic"]
    assert (critic.model, critic.reused) == ("offline-other", False)
    assert critic.first_round_review is not None
    assert len(rows(sessions, ChairReport, revision_id)) == 1


def test_a_failed_first_review_skips_its_second_round(
    pipeline: Pipeline,
    sessions: sessionmaker[Session],
    run_id: uuid.UUID,
) -> None:
    expanded = pipeline.run(Job(Stage.EXPAND, run_id, Priority.NORMAL), holder="w")
    with sessions.begin() as session:  # the optimist's review failed for good
        session.execute(
            sa.update(StepProgress)
            .where(StepProgress.run_id == run_id, StepProgress.step_name == "review_optimist")
            .values(status=StepStatus.FAILED, error="gave up")
        )
    sent: list[Job] = []
    for job in expanded.follow_ups:
        if job.persona_id != "optimist":
            sent += pipeline.run(job, holder="w").follow_ups

    assert sorted(job.step_name for job in sent) == ["debate_architect", "debate_critic"]
    assert stored(sessions, run_id)[1]["debate_optimist"][0] is StepStatus.SKIPPED
