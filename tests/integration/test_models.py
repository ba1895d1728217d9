"""The database enforces the data rules itself, and ``create_run`` writes all or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session
from support import alembic_config

from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.db.models import (
    DecisionRecord,
    LlmCall,
    PersonaReview,
    ProposalVersion,
    Run,
    StepProgress,
)
from consensus_engine.db.reads import get_run
from consensus_engine.db.writes import create_run
from consensus_engine.domain.revisions import ProposalSource
from consensus_engine.domain.runs import RunStatus, StepStatus, step_names
from consensus_engine.domain.schemas import DecisionLabel
from consensus_engine.llm.records import LlmCallOutcome

PERSONAS = [
    {"id": "architect", "name": "Architect", "weight": 0.6},
    {"id": "security", "name": "Security", "weight": 0.4},
]
STEPS = step_names(["architect", "security"])


def new_run(session: Session, **overrides: Any) -> Run:
    fields: dict[str, Any] = {
        "idea": "A queue-backed service that reviews ideas.",
        "expand_model": "gpt-test",
        "review_model": "gpt-test",
        "expand_temperature": 0.7,
        "review_temperature": 0.2,
        "personas": PERSONAS,
        "schema_version": "1.0.0",
        "prompt_set_version": "1",
        "step_names": STEPS,
    }
    fields.update(overrides)
    return create_run(session, **fields)


def review(run: Run, persona_id: str = "architect", **overrides: Any) -> PersonaReview:
    fields: dict[str, Any] = {
        "run_id": run.id,
        "persona_id": persona_id,
        "persona_name": persona_id.title(),
        "weight": 0.5,
        "review": {"confidence_score": 0.8},
        "confidence_score": 0.8,
        "blocking_issues_present": False,
        "security_concerns_present": False,
        "model": "gpt-test",
        "temperature": 0.2,
        "prompt_set_version": "1",
    }
    fields.update(overrides)
    return PersonaReview(**fields)


def count(session: Session, model: type[Any]) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


@pytest.fixture
def full_run(db_session: Session) -> Run:
    """A committed run with one row in every child table."""
    run = new_run(db_session)
    db_session.add_all([
        ProposalVersion(run_id=run.id, proposal={"title": "T"}, source=ProposalSource.EXPANDED),
        review(run),
        DecisionRecord(
            run_id=run.id, decision=DecisionLabel.APPROVE, overall_score=0.9, decision_json={}
        ),
        LlmCall(run_id=run.id, step="expand", model="gpt-test", outcome=LlmCallOutcome.SUCCESS),
    ])  # fmt: skip
    db_session.commit()
    return run


# --- CHECK constraints ---------------------------------------------------------------

BAD_VALUES = [
    ("runs", "status", "done"),
    ("runs", "run_type", "retry"),
    ("runs", "priority", "urgent"),
    ("runs", "decision", "maybe"),
    ("runs", "overall_score", 1.01),
    ("runs", "overall_score", -0.01),
    ("runs", "expand_temperature", 2.5),
    ("runs", "review_temperature", -0.1),
    ("runs", "input_tokens", -1),
    ("runs", "output_tokens", -1),
    ("runs", "cost_usd", -0.5),
    ("runs", "attempts", -1),
    ("step_progress", "status", "done"),
    ("step_progress", "step_order", -1),
    ("step_progress", "attempts", -1),
    ("proposal_versions", "source", "imagined"),
    ("persona_reviews", "weight", 0.0),
    ("persona_reviews", "weight", 1.5),
    ("persona_reviews", "confidence_score", 1.2),
    ("persona_reviews", "temperature", 3.0),
    ("decisions", "decision", "maybe"),
    ("decisions", "overall_score", -0.1),
    ("llm_calls", "attempt", 0),
    ("llm_calls", "outcome", "shrug"),
    ("llm_calls", "latency_ms", -5),
    ("llm_calls", "cost_usd", -1),
]


def _update(session: Session, run: Run, table: str, column: str, value: object) -> None:
    # Raw SQL on purpose: the ORM's enum type would refuse the bad value before the database.
    key = "id" if table == "runs" else "run_id"
    session.execute(
        sa.text(f"UPDATE {table} SET {column} = :value WHERE {key} = :run_id"),
        {"value": value, "run_id": run.id},
    )


@pytest.mark.parametrize(("table", "column", "value"), BAD_VALUES)
def test_check_constraints_reject_bad_values(
    db_session: Session, full_run: Run, table: str, column: str, value: object
) -> None:
    with pytest.raises(IntegrityError) as caught:
        _update(db_session, full_run, table, column, value)
    constraint = caught.value.orig.diag.constraint_name  # type: ignore[union-attr]
    assert constraint is not None
    assert constraint.startswith(f"ck_{table}_{column}")


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("runs", "overall_score", 0.0),
        ("runs", "overall_score", 1.0),
        ("runs", "expand_temperature", 0.0),
        ("runs", "review_temperature", 2.0),
        ("runs", "expand_temperature", None),
        ("persona_reviews", "weight", 1.0),
        ("decisions", "overall_score", 1.0),
        ("llm_calls", "attempt", 1),
    ],
)
def test_check_constraints_accept_the_boundaries(
    db_session: Session, full_run: Run, table: str, column: str, value: object
) -> None:
    _update(db_session, full_run, table, column, value)
    db_session.commit()


# --- UNIQUE constraints --------------------------------------------------------------


def test_one_review_per_persona_and_run(db_session: Session) -> None:
    run = new_run(db_session)
    db_session.add(review(run, "architect"))
    db_session.commit()

    db_session.add(review(run, "architect", confidence_score=0.1))
    with pytest.raises(IntegrityError, match="uq_persona_reviews_run_id_persona_id"):
        db_session.commit()


def test_idempotency_key_is_unique_per_tenant(db_session: Session) -> None:
    first = new_run(db_session, tenant="acme", idempotency_key="k-1")
    new_run(db_session, tenant="globex", idempotency_key="k-1")
    new_run(db_session, tenant="acme")  # no key: any number of these
    new_run(db_session, tenant="acme")

    with pytest.raises(IntegrityError, match="uq_runs_tenant_idempotency_key"):
        new_run(db_session, tenant="acme", idempotency_key="k-1")

    # The savepoint took only the duplicate with it: the caller can look up the winner.
    db_session.commit()
    winner = db_session.scalar(
        sa.select(Run).where(Run.tenant == "acme", Run.idempotency_key == "k-1")
    )
    assert winner is not None
    assert winner.id == first.id
    assert count(db_session, Run) == 4


# --- cascades ------------------------------------------------------------------------


def test_deleting_a_run_deletes_what_it_owns(db_session: Session, full_run: Run) -> None:
    db_session.delete(full_run)
    db_session.commit()

    for model in (Run, StepProgress, ProposalVersion, PersonaReview, DecisionRecord):
        assert count(db_session, model) == 0, model.__tablename__
    # Its LLM calls stay, without their run: they were billed (migration 0008).
    assert db_session.scalars(sa.select(LlmCall.run_id)).all() == [None]


def test_deleting_a_parent_keeps_its_revisions_and_reused_reviews(db_session: Session) -> None:
    parent = new_run(db_session)
    child = new_run(db_session, run_type="revision", parent_run_id=parent.id)
    db_session.add(review(child, reused=True, source_run_id=parent.id))
    db_session.commit()

    db_session.execute(sa.delete(Run).where(Run.id == parent.id))
    db_session.commit()
    db_session.expire_all()

    kept = db_session.get(Run, child.id)
    assert kept is not None
    assert kept.parent_run_id is None
    assert [r.source_run_id for r in kept.reviews] == [None]
    assert [s.step_name for s in kept.steps] == STEPS


def test_llm_calls_may_have_no_run(db_session: Session) -> None:
    db_session.add(LlmCall(step="expand", model="m", outcome=LlmCallOutcome.TIMEOUT))
    db_session.commit()
    assert count(db_session, LlmCall) == 1


# --- values round-trip ---------------------------------------------------------------


def test_timestamps_come_back_aware_utc(db_session: Session, db_engine: Engine) -> None:
    local = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).astimezone(datetime.now().astimezone().tzinfo)
    run = new_run(db_session, deadline_at=local + timedelta(hours=1))
    db_session.commit()

    with session_factory(db_engine)() as fresh:
        loaded = fresh.get(Run, run.id)
        assert loaded is not None
        for moment in (loaded.created_at, loaded.updated_at, loaded.queued_at, loaded.deadline_at):
            assert moment is not None
            assert moment.utcoffset() == timedelta(0)
        assert loaded.deadline_at == datetime(2030, 1, 2, 4, 4, 5, tzinfo=UTC)
        assert all(step.updated_at.tzinfo is not None for step in loaded.steps)


def test_server_default_timestamps_are_aware_too(db_session: Session, full_run: Run) -> None:
    db_session.execute(
        sa.text("INSERT INTO llm_calls (id, step, model, outcome) VALUES (:id, 's', 'm', 'error')"),
        {"id": uuid.uuid4()},
    )
    db_session.commit()
    created = db_session.scalars(sa.select(LlmCall.created_at)).all()
    assert created
    assert all(moment.tzinfo is not None for moment in created)


def test_naive_datetimes_are_refused(db_session: Session) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        new_run(db_session, deadline_at=datetime(2030, 1, 1))


def test_json_money_and_enums_round_trip(db_session: Session, db_engine: Engine) -> None:
    run = new_run(db_session, extra_context={"text": "ctx", "nested": [1, {"a": None}]})
    run.cost_usd = Decimal("0.000123")
    run.decision = DecisionLabel.REVISE
    db_session.commit()

    with session_factory(db_engine)() as fresh:
        loaded = fresh.get(Run, run.id)
        assert loaded is not None
        assert loaded.extra_context == {"text": "ctx", "nested": [1, {"a": None}]}
        assert loaded.personas == PERSONAS
        assert loaded.cost_usd == Decimal("0.000123")
        assert loaded.decision is DecisionLabel.REVISE
        assert loaded.status is RunStatus.QUEUED


# --- repository ----------------------------------------------------------------------


def test_create_run_writes_the_run_and_its_pending_steps(db_session: Session) -> None:
    run = new_run(db_session, tenant="acme")
    db_session.commit()
    db_session.expire_all()

    loaded = get_run(db_session, run.id, tenant="acme")
    assert loaded is not None
    assert [(s.step_name, s.step_order, s.status) for s in loaded.steps] == [
        (name, order, StepStatus.PENDING) for order, name in enumerate(STEPS)
    ]
    assert loaded.queued_at is not None
    assert loaded.attempts == 0


def test_create_run_leaves_nothing_behind_when_a_step_fails(db_session: Session) -> None:
    kept = new_run(db_session)

    with pytest.raises(IntegrityError, match="uq_step_progress_run_id_step_name"):
        new_run(db_session, step_names=["expand", "expand"])

    assert count(db_session, Run) == 1
    assert count(db_session, StepProgress) == len(STEPS)
    db_session.commit()
    assert db_session.get(Run, kept.id) is not None


def test_get_run_hides_other_tenants_runs(db_session: Session) -> None:
    run = new_run(db_session, tenant="acme")
    db_session.commit()
    assert get_run(db_session, run.id, tenant="globex") is None
    assert get_run(db_session, uuid.uuid4(), tenant="acme") is None


# --- SQLite smoke ----------------------------------------------------------------------


@pytest.fixture
def sqlite_session(sqlite_url: str) -> Iterator[Session]:
    command.upgrade(alembic_config(sqlite_url), "head")
    engine = create_engine_from_url(sqlite_url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def test_sqlite_smoke_run_with_steps_round_trips(sqlite_session: Session) -> None:
    run = new_run(sqlite_session, extra_context={"text": "ctx"})
    sqlite_session.commit()
    sqlite_session.expire_all()

    loaded = get_run(sqlite_session, run.id, tenant="default")
    assert loaded is not None
    assert loaded.extra_context == {"text": "ctx"}
    assert [s.step_name for s in loaded.steps] == STEPS
    assert loaded.created_at.tzinfo is UTC
    assert all(s.updated_at.tzinfo is UTC for s in loaded.steps)


def test_sqlite_smoke_savepoint_and_foreign_keys(sqlite_session: Session) -> None:
    kept = new_run(sqlite_session)
    with pytest.raises(IntegrityError):
        new_run(sqlite_session, step_names=["expand", "expand"])
    sqlite_session.commit()
    assert count(sqlite_session, Run) == 1

    sqlite_session.execute(sa.delete(Run).where(Run.id == kept.id))
    sqlite_session.commit()
    assert count(sqlite_session, StepProgress) == 0  # ON DELETE CASCADE needs the pragma


def test_sqlite_smoke_rollback_discards_a_created_run(sqlite_session: Session) -> None:
    # Without SQLAlchemy emitting BEGIN itself, sqlite3 would commit at RELEASE SAVEPOINT.
    new_run(sqlite_session)
    sqlite_session.rollback()
    assert count(sqlite_session, Run) == 0
