"""Writing runs and what their stages produce: the run and its steps, proposals, reviews,
decisions, LLM calls, the enqueue confirmation.

Functions take the caller's :class:`Session` and never commit: the caller owns the
transaction, so a use case that writes several things writes all or none.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached

from consensus_engine.db import budget_holds, claims
from consensus_engine.db.models import ChairReport as ChairRow
from consensus_engine.db.models import (
    DecisionRecord,
    LlmCall,
    ProposalVersion,
    Run,
    StepProgress,
    metadata,
)
from consensus_engine.db.models import PersonaReview as ReviewRow
from consensus_engine.db.types import utcnow
from consensus_engine.domain.revisions import ProposalDiff, ProposalSource
from consensus_engine.domain.runs import Priority, RunStatus, RunType, StepStatus
from consensus_engine.domain.schemas import (
    ChairReport,
    Decision,
    ExpandedProposal,
    PersonaReview,
)
from consensus_engine.llm.records import CallRecord

_LLM_CALLS = metadata.tables[LlmCall.__tablename__]
_REVIEWS = metadata.tables[ReviewRow.__tablename__]
_PROPOSALS = metadata.tables[ProposalVersion.__tablename__]
_DECISIONS = metadata.tables[DecisionRecord.__tablename__]
_CHAIR_REPORTS = metadata.tables[ChairRow.__tablename__]
"""Tables written with Core statements, where building ORM objects would cost more."""


def create_run(
    session: Session,
    *,
    idea: str,
    expand_model: str,
    review_model: str,
    personas: list[dict[str, Any]],
    schema_version: str,
    prompt_set_version: str,
    step_names: list[str],
    tenant: str = "default",
    run_type: RunType = RunType.INITIAL,
    priority: Priority = Priority.NORMAL,
    parent_run_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    extra_context: str | dict[str, Any] | None = None,
    edited_proposal: dict[str, Any] | None = None,
    edit_notes: str | None = None,
    expand_temperature: float | None = None,
    review_temperature: float | None = None,
    parameters: dict[str, Any] | None = None,
    deadline_at: datetime | None = None,
    enqueued_at: datetime | None = None,
) -> Run:
    """Add a queued run and one pending step per name (in that order).

    Two Core INSERTs (the steps in one statement), so no unit of work runs; the run
    comes back persistent in ``session`` (later changes to it flush as usual), its
    steps loaded when first read. ``enqueued_at`` records the publish in advance: the
    run service clears it should the publish fail (``unmark_enqueued``).

    The rows are written inside a savepoint of the caller's transaction: a
    constraint violation (a repeated idempotency key, a repeated step name)
    raises ``IntegrityError`` here and leaves neither the run nor any step
    behind, while the caller's transaction stays usable, e.g. to look up the
    run that already holds the idempotency key.
    """
    now = utcnow()
    values: dict[str, Any] = dict.fromkeys(_RUN_ATTRIBUTES) | {
        "id": uuid.uuid4(),
        "tenant": tenant,
        "status": RunStatus.QUEUED,
        "run_type": run_type,
        "priority": priority,
        "parent_run_id": parent_run_id,
        "idempotency_key": idempotency_key,
        "idea": idea,
        "extra_context": extra_context,
        "edited_proposal": edited_proposal,
        "edit_notes": edit_notes,
        "expand_model": expand_model,
        "expand_temperature": expand_temperature,
        "review_model": review_model,
        "review_temperature": review_temperature,
        "personas": personas,
        "schema_version": schema_version,
        "prompt_set_version": prompt_set_version,
        "parameters": parameters or {},
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": Decimal(0),
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "queued_at": now,
        "last_enqueued_at": enqueued_at,
        "deadline_at": deadline_at,
    }
    steps = [
        {
            "id": uuid.uuid4(),
            "run_id": values["id"],
            "step_name": name,
            "step_order": order,
            "status": StepStatus.PENDING,
            "attempts": 0,
            "updated_at": now,
        }
        for order, name in enumerate(step_names)
    ]
    with session.begin_nested():
        connection = session.connection()  # after the savepoint's start, so it is emitted
        connection.execute(sa.insert(Run), values)
        connection.execute(sa.insert(StepProgress), steps)  # one multi-row INSERT
    run = Run(**values)
    make_transient_to_detached(run)  # every column set: nothing to load back
    session.add(run)
    return run


_RUN_ATTRIBUTES = tuple(column.key for column in sa.inspect(Run).column_attrs)
"""Every column of a run, so a run built here has no attribute left to load."""


def record_llm_calls(
    session: Session, run: Run | None, calls: Sequence[CallRecord], *, tenant: str | None = None
) -> None:
    """One ``llm_calls`` row per attempt, failed ones too, and the run's running totals;
    the calls' budget holds go, the rows now count in their place.

    ``run`` (locked by the caller) is also marked alive, calls or none: the settling
    transaction's one write to the run's row. ``run`` is ``None`` for the synchronous
    endpoints: the calls are kept for cost alone, under ``tenant``. A run's calls are its
    tenant's.
    """
    owner = run.tenant if run is not None else tenant
    if owner is None:
        raise ValueError("an LLM call without a run needs a tenant")
    if run is not None:
        claims.touch_run(
            session,
            run,
            input_tokens=sum(call.input_tokens for call in calls),
            output_tokens=sum(call.output_tokens for call in calls),
            cost_usd=sum((call.cost_usd for call in calls), Decimal(0)),
        )
    if not calls:
        return
    budget_holds.release(session, [call.call_id for call in calls if call.call_id])
    # One Core INSERT of every row: no ORM object per call to build and flush.
    session.execute(
        sa.insert(_LLM_CALLS),
        [
            {
                "run_id": None if run is None else run.id,
                "tenant": owner,
                "step": call.step,
                "model": call.model,
                "provider": call.provider,
                "attempt": call.attempt,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "cost_usd": call.cost_usd,
                "latency_ms": round(call.latency_ms),
                "outcome": call.outcome,
            }
            for call in calls
        ],
    )


def upsert_review(
    session: Session,
    run_id: uuid.UUID,
    review: PersonaReview,
    *,
    weight: float,
    model: str,
    provider: str,
    temperature: float | None,
    prompt_set_version: str,
    source_run_id: uuid.UUID | None = None,
) -> None:
    """Store one persona's review of the run, replacing an earlier one for the same persona.

    ``source_run_id`` marks a review reused from an earlier run rather than written afresh.
    One statement (INSERT ... ON CONFLICT), so storing costs no read first.
    """
    values = {
        "persona_name": review.persona_name,
        "weight": weight,
        **_review_columns(review),
        "reused": source_run_id is not None,
        "source_run_id": source_run_id,
        "model": model,
        "provider": provider,
        "temperature": temperature,
        "prompt_set_version": prompt_set_version,
        "first_round_review": sa.null(),  # SQL NULL, not JSON null: the second round coalesces
    }
    row = {"id": uuid.uuid4(), "run_id": run_id, "persona_id": review.persona_id, **values}
    _upsert(session, _REVIEWS, row, ["run_id", "persona_id"], values)


def store_final_review(
    session: Session,
    run_id: uuid.UUID,
    review: PersonaReview,
    *,
    model: str,
    provider: str,
    temperature: float | None,
) -> None:
    """A persona's second-round review replaces its first, which is kept beside it."""
    session.execute(
        sa.update(_REVIEWS)
        .where(_REVIEWS.c.run_id == run_id, _REVIEWS.c.persona_id == review.persona_id)
        .values(
            first_round_review=sa.func.coalesce(_REVIEWS.c.first_round_review, _REVIEWS.c.review),
            **_review_columns(review),
            model=model,
            provider=provider,
            temperature=temperature,
        )
    )


def _review_columns(review: PersonaReview) -> dict[str, Any]:
    """The columns a review's own content fills."""
    return {
        "review": review.model_dump(mode="json"),
        "confidence_score": review.confidence_score,
        "blocking_issues_present": review.has_blocking_issues,
        "security_concerns_present": review.has_security_critical_issue,
    }


def store_chair_report(
    session: Session,
    run_id: uuid.UUID,
    report: ChairReport,
    *,
    model: str,
    provider: str,
    fallback: bool,
) -> None:
    """The chair's synthesis, replacing one an earlier attempt stored (one statement)."""
    values = {
        "model": model,
        "provider": provider,
        "fallback": fallback,
        "report": report.model_dump(mode="json"),
    }
    row = {"id": uuid.uuid4(), "run_id": run_id, **values}
    _upsert(session, _CHAIR_REPORTS, row, ["run_id"], values)


def store_proposal(
    session: Session,
    run_id: uuid.UUID,
    proposal: ExpandedProposal,
    *,
    source: ProposalSource,
    edit_notes: str | None,
    diff: ProposalDiff | None,
) -> None:
    """The run's proposal, replacing one an earlier attempt stored (one statement)."""
    values = {
        "proposal": proposal.model_dump(mode="json"),
        "source": source,
        "edit_notes": edit_notes,
        "diff": None if diff is None else dict(diff),
    }
    _upsert(session, _PROPOSALS, {"run_id": run_id, **values}, ["run_id"], values)


def store_decision(session: Session, run: Run, decision: Decision) -> None:
    """The run's decision record, and its label and score on the run itself (for lists)."""
    values = {
        "decision": decision.decision,
        "overall_score": decision.overall_weighted_confidence,
        "decision_json": decision.model_dump(mode="json"),
    }
    _upsert(session, _DECISIONS, {"run_id": run.id, **values}, ["run_id"], values)
    run.decision = decision.decision
    run.overall_score = decision.overall_weighted_confidence


def _upsert(
    session: Session,
    table: sa.Table,
    row: dict[str, Any],
    keys: list[str],
    changes: dict[str, Any],
) -> None:
    """INSERT ``row``, or on a conflict over ``keys`` UPDATE it with ``changes``: one
    statement, in the session's dialect (PostgreSQL, SQLite)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(table).values(row).on_conflict_do_update(index_elements=keys, set_=changes)
    )


def unmark_enqueued(session: Session, run_id: uuid.UUID, stamp: datetime) -> None:
    """The publish recorded at ``stamp`` (``create_run``'s ``enqueued_at``) failed: clear the
    record, unless the sweeper has sent the run since, so the sweeper sends it soon."""
    session.execute(
        sa.update(Run)
        .where(Run.id == run_id, Run.last_enqueued_at == stamp)
        .values(last_enqueued_at=None)
    )
