"""Deleting runs against real PostgreSQL: what goes with a run and what stays (its
revisions, and its LLM calls, so spend does not change), which runs may go, and the
sweeper's retention period."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import deletions, reads
from consensus_engine.db.engine import session_factory
from consensus_engine.db.models import (
    ChairReport,
    DecisionRecord,
    LlmCall,
    PersonaReview,
    ProposalVersion,
    Run,
    StepProgress,
)
from consensus_engine.db.types import utcnow
from consensus_engine.domain.revisions import ProposalSource
from consensus_engine.domain.runs import RunStatus, RunType
from consensus_engine.domain.schemas import DecisionLabel
from consensus_engine.llm.records import LlmCallOutcome
from consensus_engine.messaging import job_queues
from consensus_engine.observability.logs import lifecycle_fields
from consensus_engine.observability.metrics import PipelineMetrics
from consensus_engine.pipeline import sweeper
from consensus_engine.settings import load_settings
from consensus_engine.workers import dispatch

from .test_models import new_run

TENANT = "acme"
NOW = datetime.now().astimezone()
OWNED = (StepProgress, ProposalVersion, PersonaReview, DecisionRecord, ChairReport)


def add_run(
    session: Session,
    *,
    status: RunStatus = RunStatus.COMPLETED,
    ended_days_ago: float | None = 1,
    parent: Run | None = None,
) -> Run:
    run = new_run(
        session,
        idea="Rent out the workshop at night.",
        tenant=TENANT,
        run_type=RunType.REVISION if parent is not None else RunType.INITIAL,
        parent_run_id=None if parent is None else parent.id,
    )
    run.status = status
    if status.is_terminal and ended_days_ago is not None:
        run.completed_at = NOW - timedelta(days=ended_days_ago)
    session.commit()
    return run


def complete(session: Session, run: Run, *, reused_from: Run | None = None) -> None:
    """A row in every table a run owns, and two billed LLM calls."""
    session.add_all([
        ProposalVersion(run_id=run.id, proposal={"title": "T"}, source=ProposalSource.EXPANDED),
        PersonaReview(
            run_id=run.id, persona_id="critic", persona_name="Critic", weight=1.0,
            review={}, confidence_score=0.7, blocking_issues_present=False,
            security_concerns_present=False, model="gpt-test", prompt_set_version="1",
            reused=reused_from is not None,
            source_run_id=None if reused_from is None else reused_from.id,
        ),
        DecisionRecord(
            run_id=run.id, decision=DecisionLabel.APPROVE, overall_score=0.7, decision_json={}
        ),
        ChairReport(run_id=run.id, model="chair", provider="default", fallback=False, report={}),
        *(
            LlmCall(
                run_id=run.id, tenant=TENANT, step=step, model="gpt-test",
                input_tokens=100, output_tokens=50, cost_usd=Decimal("0.25"),
                outcome=LlmCallOutcome.SUCCESS,
            )
            for step in ("expand", "review_critic")
        ),
    ])  # fmt: skip
    session.commit()


def rows_of(session: Session, run_id: uuid.UUID) -> dict[str, int]:
    """How many rows each table a run owns holds for it."""
    return {
        model.__tablename__: session.scalar(
            sa.select(sa.func.count()).select_from(model).where(model.run_id == run_id)
        )
        or 0
        for model in OWNED
    }


def delete(session: Session, run: Run) -> str | None:
    """What the run service does: the rule, then the delete; the refusal if there is one."""
    locked = session.get(Run, run.id, with_for_update=True)
    assert locked is not None
    kept = deletions.kept_because(session, locked)
    if kept is None:
        assert deletions.delete(session, [run.id]) == 1
    session.commit()
    session.expire_all()
    return kept


def test_a_run_goes_with_everything_of_it_but_its_spend_stays(db_session: Session) -> None:
    parent = add_run(db_session)
    complete(db_session, parent)
    child = add_run(db_session, parent=parent)
    complete(db_session, child, reused_from=parent)
    parent_id, kept_rows = parent.id, rows_of(db_session, child.id)
    at = utcnow()
    spent = reads.spend(db_session, TENANT, at)
    usage = reads.daily_usage(db_session, TENANT, NOW - timedelta(days=2))
    assert spent.usd_today == Decimal("1.00") and all(rows_of(db_session, parent.id).values())

    assert delete(db_session, parent) is None

    assert db_session.get(Run, parent_id) is None
    assert set(rows_of(db_session, parent_id).values()) == {0}
    # The revision stays, whole, without its parent link or its reused review's source.
    kept = db_session.get(Run, child.id)
    assert kept is not None and kept.parent_run_id is None
    assert rows_of(db_session, child.id) == kept_rows
    assert [review.source_run_id for review in kept.reviews] == [None]
    # The calls stay (without their run), so the tenant's spend does not move.
    calls = db_session.scalars(sa.select(LlmCall).where(LlmCall.tenant == TENANT)).all()
    assert sorted(str(call.run_id) for call in calls) == sorted([str(child.id)] * 2 + ["None"] * 2)
    assert reads.spend(db_session, TENANT, at) == spent
    assert reads.daily_usage(db_session, TENANT, NOW - timedelta(days=2)) == usage


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_a_run_under_way_stays(db_session: Session, status: RunStatus) -> None:
    run = add_run(db_session, status=status)
    assert delete(db_session, run) == f"the run is {status}: cancel it first, then delete it"
    assert db_session.get(Run, run.id) is not None


def test_a_run_a_revision_under_way_reads_stays_until_it_ended(db_session: Session) -> None:
    parent = add_run(db_session)
    child = add_run(db_session, status=RunStatus.RUNNING, parent=parent)
    assert "a revision of this run is under way" in (delete(db_session, parent) or "")
    child.status = RunStatus.FAILED
    db_session.commit()
    assert delete(db_session, parent) is None


# -- retention ----------------------------------------------------------------------------------


@pytest.fixture
def aged(db_session: Session) -> dict[str, uuid.UUID]:
    """Runs (their ids) on either side of a 30-day retention period."""
    runs = {
        "completed_90": add_run(db_session, ended_days_ago=90),
        "failed_60": add_run(db_session, status=RunStatus.FAILED, ended_days_ago=60),
        "cancelled_45": add_run(db_session, status=RunStatus.CANCELLED, ended_days_ago=45),
        "completed_10": add_run(db_session, ended_days_ago=10),
        "queued_old": add_run(db_session, status=RunStatus.QUEUED),
        "read_by_revision_50": add_run(db_session, ended_days_ago=50),
    }
    runs["queued_old"].created_at = NOW - timedelta(days=200)
    runs["revision"] = add_run(
        db_session, status=RunStatus.QUEUED, parent=runs["read_by_revision_50"]
    )
    complete(db_session, runs["completed_90"])
    return {name: run.id for name, run in runs.items()}


def remaining(session: Session, runs: dict[str, uuid.UUID]) -> set[str]:
    present = set(session.scalars(sa.select(Run.id)))
    return {name for name, run_id in runs.items() if run_id in present}


def test_retention_deletes_ended_runs_past_it_oldest_first_in_batches(
    db_session: Session, aged: dict[str, uuid.UUID]
) -> None:
    first = sweeper.delete_expired(db_session, retention_days=30, limit=2)
    db_session.commit()
    assert [run.run_id for run in first] == [aged["completed_90"], aged["failed_60"]]
    assert [(run.tenant, run.status) for run in first] == [
        (TENANT, RunStatus.COMPLETED),
        (TENANT, RunStatus.FAILED),
    ]
    second = sweeper.delete_expired(db_session, retention_days=30, limit=2)
    db_session.commit()
    assert [run.run_id for run in second] == [aged["cancelled_45"]]
    assert sweeper.delete_expired(db_session, retention_days=30) == []
    assert remaining(db_session, aged) == {
        "completed_10",
        "queued_old",
        "read_by_revision_50",
        "revision",
    }
    assert db_session.scalar(sa.select(sa.func.count()).select_from(LlmCall)) == 2


def test_retention_skips_runs_another_sweeper_holds(
    db_session: Session, aged: dict[str, uuid.UUID], sessions: sessionmaker[Session]
) -> None:
    with sessions() as other:
        other.get(Run, aged["completed_90"], with_for_update=True)
        deleted = sweeper.delete_expired(db_session, retention_days=30)
        db_session.commit()
    assert aged["completed_90"] not in {run.run_id for run in deleted}
    assert len(deleted) == 2


@pytest.fixture
def sessions(db_session: Session) -> sessionmaker[Session]:
    engine = db_session.get_bind()
    assert isinstance(engine, sa.Engine)
    return session_factory(engine)


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[CollectorRegistry]:
    """The sweeper's metrics, in a registry of this test's own."""
    registry = CollectorRegistry()
    counted = PipelineMetrics(registry)
    monkeypatch.setattr(dispatch, "pipeline_metrics", lambda: counted)
    yield registry


def test_a_sweep_with_a_retention_period_deletes_counts_and_logs(
    aged: dict[str, uuid.UUID],
    sessions: sessionmaker[Session],
    metrics: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def events(name: str) -> list[dict[str, Any]]:
        return [
            dict(fields)
            for record in caplog.records
            if (fields := lifecycle_fields(record)).get("lifecycle_event") == name
        ]

    def sweep(**settings: Any) -> sweeper.SweepReport:
        loaded = load_settings(**settings)
        broker = StubBroker()
        for queue in job_queues(loaded):  # the old queued run is sent again
            broker.declare_queue(queue)
        return dispatch.sweep_once(loaded, broker, sessions)

    caplog.set_level(logging.INFO, logger="consensus_engine.lifecycle")
    kept_forever = sweep()
    assert kept_forever.deleted == [] and len(remaining_ids(sessions)) == len(aged)

    report = sweep(run_retention_days=30)

    gone = {aged[name] for name in ("completed_90", "failed_60", "cancelled_45")}
    assert {run.run_id for run in report.deleted} == gone
    assert remaining_ids(sessions) == set(aged.values()) - gone
    audit = events("run_deleted")
    assert {(line["run_id"], line["reason"], line["tenant"]) for line in audit} == {
        (str(run_id), "retention", TENANT) for run_id in gone
    }
    assert [line["count"] for line in events("sweeper") if line["action"] == "deleted"] == [3]
    counted = metrics.get_sample_value("consensus_sweeper_actions_total", {"action": "deleted"})
    assert counted == 3


def remaining_ids(sessions: sessionmaker[Session]) -> set[uuid.UUID]:
    with sessions() as session:
        return set(session.scalars(sa.select(Run.id)))
