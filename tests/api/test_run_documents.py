"""The run documents PostgreSQL renders equal what the presenters render, type for type,
in one statement per read."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from consensus_engine.api import presenters
from consensus_engine.api.schemas import RunList
from consensus_engine.db import documents, reads
from consensus_engine.db.models import (
    ChairReport,
    DecisionRecord,
    LlmCall,
    PersonaReview,
    ProposalVersion,
    Run,
)
from consensus_engine.db.writes import create_run
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.council import Council
from consensus_engine.domain.revisions import ProposalSource
from consensus_engine.domain.runs import RunStatus, RunType, StepStatus, step_names
from consensus_engine.domain.schemas import (
    Concern,
    Decision,
    DecisionLabel,
    ExpandedProposal,
    ScoreBreakdown,
)
from consensus_engine.domain.schemas import PersonaReview as ReviewDocument
from consensus_engine.llm.records import LlmCallOutcome

TENANT = "acme"
PERSONAS: list[dict[str, Any]] = [
    {"id": "security", "name": "Security", "weight": 0.5, "focus": "threats", "instructions": "x"},
    {"id": "architect", "name": "Architect", "weight": 0.5, "focus": "design", "instructions": "y"},
]
ON_THE_SECOND = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def typed(value: Any) -> Any:
    """``value`` with every scalar tagged by its type, so ``1`` and ``1.0`` differ."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def new_run(session: Session, **overrides: Any) -> Run:
    fields: dict[str, Any] = {
        "idea": 'Ship a queue-backed reviewer — with ünïcode and "quotes"\n',
        "expand_model": "gpt-test",
        "review_model": "gpt-test",
        "expand_temperature": 1.0,
        "review_temperature": 0.2,
        "personas": PERSONAS,
        "schema_version": "1.0.0",
        "prompt_set_version": "1",
        "step_names": step_names([p["id"] for p in PERSONAS]),
        "tenant": TENANT,
        "extra_context": {"team": 3},
    }
    return create_run(session, **(fields | overrides))


def review_document(persona: dict[str, Any], score: float) -> dict[str, Any]:
    return ReviewDocument(
        persona_id=persona["id"],
        persona_name=persona["name"],
        confidence_score=score,
        summary="Fine overall.",
        strengths=["clear"],
        concerns=[Concern(text="load", is_blocking=False)],
        recommendations=["measure"],
        blocking_issues=[],
        estimated_effort="2 weeks",
        dependency_risks=["queue"],
    ).model_dump(mode="json")


def complete(session: Session, run: Run) -> None:
    """The proposal, both reviews (one reused), the decision, LLM calls, steps done."""
    proposal = ExpandedProposal(
        title="T",
        summary="S",
        problem_statement="P",
        proposed_solution="Q",
        assumptions=["a"],
        scope_non_goals=[],
    )
    session.add(
        ProposalVersion(
            run_id=run.id, proposal=proposal.model_dump(mode="json"), source=ProposalSource.EXPANDED
        )
    )
    for persona, score, reused in ((PERSONAS[1], 1.0, True), (PERSONAS[0], 0.75, False)):
        session.add(
            PersonaReview(
                run_id=run.id,
                persona_id=persona["id"],
                persona_name=persona["name"],
                weight=persona["weight"],
                review=review_document(persona, score),
                confidence_score=score,
                blocking_issues_present=False,
                security_concerns_present=False,
                reused=reused,
                source_run_id=run.id if reused else None,
                model="gpt-test",
                temperature=0.0,
                prompt_set_version="1",
            )
        )
    decision = Decision(
        decision=DecisionLabel.APPROVE,
        overall_weighted_confidence=0.875,
        score_decision=DecisionLabel.APPROVE,
        rules_applied=["score"],
        score_breakdown=ScoreBreakdown(
            weights={"security": 0.5, "architect": 0.5},
            individual_scores={"security": 0.75, "architect": 1.0},
            weighted_contributions={"security": 0.375, "architect": 0.5},
            weight_total=1.0,
            formula="sum",
        ),
        minority_reports=[],
        reviewed_personas=["security", "architect"],
        missing_personas=[],
        approve_threshold=0.8,
        revise_threshold=0.6,
        rationale="Approved.",
    )
    session.add(
        DecisionRecord(
            run_id=run.id,
            decision=DecisionLabel.APPROVE,
            overall_score=0.875,
            decision_json=decision.model_dump(mode="json"),
        )
    )
    for step, cost in (("expand", "0.001"), ("review_security", "0.000005"), ("expand", "0")):
        session.add(
            LlmCall(
                run_id=run.id,
                tenant=TENANT,
                step=step,
                model="gpt-test",
                input_tokens=10,
                output_tokens=5,
                cost_usd=Decimal(cost),
                outcome=LlmCallOutcome.SUCCESS,
            )
        )
    for progress in run.steps:
        progress.status = StepStatus.COMPLETED
        progress.started_at = ON_THE_SECOND
        progress.completed_at = ON_THE_SECOND + timedelta(seconds=1)
        progress.attempts = 1
    run.steps[1].step_metadata = {"reused": True, "note": "from the parent"}
    run.status, run.decision, run.overall_score = RunStatus.COMPLETED, DecisionLabel.APPROVE, 0.875
    run.completed_at, run.cost_usd = ON_THE_SECOND, Decimal("0.001005")
    run.input_tokens, run.output_tokens = 30, 15


@pytest.fixture
def runs(db_session: Session) -> Iterator[dict[str, Run]]:
    """A completed run, a failed one, a revision of the first with its plan, a queued one."""
    completed = new_run(db_session)
    complete(db_session, completed)
    failed = new_run(db_session, expand_temperature=None)
    failed.status, failed.error_code, failed.error = RunStatus.FAILED, "LLM_ERROR", "gave up"
    revision = new_run(
        db_session,
        run_type=RunType.REVISION,
        parent_run_id=completed.id,
        edited_proposal={"title": "T2"},
        edit_notes="shorter",
        parameters={"rerun_personas": ["security"]},
    )
    revision.steps[0].step_metadata = {"plan": {"rerun": ["security"], "reused": ["architect"]}}
    queued = new_run(db_session, personas=[])
    chaired, chair_failed = council_run(db_session), council_run(db_session)
    db_session.add(
        ChairReport(
            run_id=chaired.id,
            model="chair-model",
            provider="local",
            fallback=True,
            report={
                "summary": "Approved, narrowly.",
                "agreed": ["clear scope"],
                "split": [{"topic": "load", "positions": "Security doubts it; Architect not."}],
                "would_change_outcome": ["a load test"],
            },
        )
    )
    chair_failed.steps[-1].status, chair_failed.steps[-1].error = StepStatus.FAILED, "down"
    db_session.commit()
    yield {
        "completed": completed,
        "failed": failed,
        "revision": revision,
        "queued": queued,
        "chaired": chaired,
        "chair_failed": chair_failed,
    }


def council_run(session: Session) -> Run:
    """A completed run of two rounds with a chair, one persona on its own model and
    provider; its chair step completed."""
    personas = [PERSONAS[0] | {"model": "local-model"}, PERSONAS[1]]
    council = Council(rounds=2, chair=ModelChoice("chair-model", 0.3), chair_fallback="gpt-test")
    run = new_run(
        session,
        personas=personas,
        step_names=step_names([p["id"] for p in personas], rounds=2, chair=True),
        parameters=council.to_parameters(),
    )
    complete(session, run)
    session.flush()
    for review in run.reviews:
        review.first_round_review = review_document(PERSONAS[0], 0.5) | {
            "persona_id": review.persona_id,
            "persona_name": review.persona_name,
        }
        review.provider = "local"
    return run


def presented(session: Session, run_id: uuid.UUID) -> Any:
    """The answer as the presenters render it (the SQLite path, and the path before), from
    the rows as stored (not the objects the fixture wrote)."""
    session.expire_all()
    run = reads.get_run(session, run_id, tenant=TENANT, detailed=True)
    assert run is not None
    return json.loads(presenters.run_detail(session, run).model_dump_json())


@pytest.mark.parametrize(
    "name", ["completed", "failed", "revision", "queued", "chaired", "chair_failed"]
)
def test_the_rendered_detail_equals_the_presented_one(
    db_session: Session, runs: dict[str, Run], name: str
) -> None:
    run_id = runs[name].id
    expected = presented(db_session, run_id)
    rendered = documents.run_detail(db_session, run_id, tenant=TENANT)
    assert rendered is not None
    assert typed(json.loads(rendered)) == typed(expected)
    assert "instructions" not in rendered.decode()


def test_another_tenants_run_is_not_rendered(db_session: Session, runs: dict[str, Run]) -> None:
    assert documents.run_detail(db_session, runs["completed"].id, tenant="globex") is None
    assert documents.run_detail(db_session, uuid.uuid4(), tenant=TENANT) is None


@pytest.fixture
def statements(db_session: Session) -> Iterator[list[str]]:
    """Every statement the session's engine sends from now on."""
    sent: list[str] = []
    engine = db_session.get_bind()

    def record(*args: Any) -> None:
        sent.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_a_detail_read_is_one_statement_once_prepared(
    db_session: Session, runs: dict[str, Run], statements: list[str]
) -> None:
    run_id = runs["completed"].id
    db_session.connection().info.pop("consensus_prepared", None)
    db_session.execute(sa.text("DEALLOCATE ALL"))
    statements.clear()
    first = documents.run_detail(db_session, run_id, tenant=TENANT)
    assert [s.split()[0] for s in statements] == ["PREPARE", "EXECUTE"]
    db_session.rollback()  # a prepared statement outlives the transaction
    statements.clear()
    assert documents.run_detail(db_session, run_id, tenant=TENANT) == first
    assert [s.split()[0] for s in statements] == ["EXECUTE"]


@pytest.mark.parametrize("limit", [3, 10])
def test_the_rendered_list_equals_the_presented_one_in_one_statement(
    db_session: Session, runs: dict[str, Run], statements: list[str], limit: int
) -> None:
    filters = reads.RunFilters()
    statements.clear()
    page = reads.list_runs(db_session, tenant=TENANT, filters=filters, limit=limit, rendered=True)
    assert len(statements) == 1
    cursor = page.next_cursor.encode() if page.next_cursor else None
    rendered = json.loads(documents.run_list([row.document for row in page.rows], limit, cursor))
    plain = reads.list_runs(db_session, tenant=TENANT, filters=filters, limit=limit)
    expected = RunList(
        runs=[presenters.list_item(row) for row in plain.rows],
        limit=limit,
        next_cursor=plain.next_cursor.encode() if plain.next_cursor else None,
    )
    assert typed(rendered) == typed(json.loads(expected.model_dump_json()))
    assert len(rendered["runs"]) == min(limit, len(runs))


def test_a_council_run_shows_its_models_rounds_and_chair(
    db_session: Session, runs: dict[str, Run]
) -> None:
    chaired = json.loads(documents.run_detail(db_session, runs["chaired"].id, tenant=TENANT) or "")
    assert (
        chaired["models"].items()
        >= {
            "review_rounds": 2,
            "chair_model": "chair-model",
            "chair_fallback_model": "gpt-test",
        }.items()
    )
    assert [p["model"] for p in chaired["personas"]] == ["local-model", None]
    assert {r["provider"] for r in chaired["reviews"]} == {"local"}
    assert {r["first_round_review"]["confidence_score"] for r in chaired["reviews"]} == {0.5}
    assert chaired["chair"] == {
        "status": "completed",
        "model": "chair-model",
        "provider": "local",
        "fallback": True,
        "model_written": True,
        "report": {
            "summary": "Approved, narrowly.",
            "agreed": ["clear scope"],
            "split": [{"topic": "load", "positions": "Security doubts it; Architect not."}],
            "would_change_outcome": ["a load test"],
        },
        "error": None,
    }
    failed = json.loads(
        documents.run_detail(db_session, runs["chair_failed"].id, tenant=TENANT) or ""
    )
    assert failed["chair"].items() >= {"status": "failed", "report": None, "error": "down"}.items()
    plain = json.loads(documents.run_detail(db_session, runs["completed"].id, tenant=TENANT) or "")
    assert plain["chair"] is None and plain["models"]["review_rounds"] == 1
