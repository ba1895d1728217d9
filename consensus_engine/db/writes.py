"""Writing runs and what their stages produce: the run and its steps, proposals, reviews,
decisions, LLM calls, the enqueue confirmation.

Functions take the caller's :class:`Session` and never commit: the caller owns the
transaction, so a use case that writes several things writes all or none.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consensus_engine.db import budget_holds
from consensus_engine.db.models import DecisionRecord, LlmCall, ProposalVersion, Run, StepProgress
from consensus_engine.db.models import PersonaReview as ReviewRow
from consensus_engine.db.types import utcnow
from consensus_engine.domain.revisions import ProposalDiff, ProposalSource
from consensus_engine.domain.runs import Priority, RunStatus, RunType, StepStatus
from consensus_engine.domain.schemas import Decision, ExpandedProposal, PersonaReview
from consensus_engine.llm.records import CallRecord


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
) -> Run:
    """Add a queued run and one pending step per name (in that order), and flush.

    The rows are written inside a savepoint of the caller's transaction: a
    constraint violation (a repeated idempotency key, a repeated step name)
    raises ``IntegrityError`` here and leaves neither the run nor any step
    behind, while the caller's transaction stays usable, e.g. to look up the
    run that already holds the idempotency key.
    """
    now = utcnow()
    run = Run(
        tenant=tenant,
        status=RunStatus.QUEUED,
        run_type=run_type,
        priority=priority,
        parent_run_id=parent_run_id,
        idempotency_key=idempotency_key,
        idea=idea,
        extra_context=extra_context,
        edited_proposal=edited_proposal,
        edit_notes=edit_notes,
        expand_model=expand_model,
        expand_temperature=expand_temperature,
        review_model=review_model,
        review_temperature=review_temperature,
        personas=personas,
        schema_version=schema_version,
        prompt_set_version=prompt_set_version,
        parameters=parameters or {},
        created_at=now,
        updated_at=now,
        queued_at=now,
        deadline_at=deadline_at,
    )
    run.steps = [
        StepProgress(step_name=name, step_order=order, status=StepStatus.PENDING, updated_at=now)
        for order, name in enumerate(step_names)
    ]
    with session.begin_nested():
        session.add(run)
        session.flush()
    return run


def record_llm_calls(
    session: Session, run: Run | None, calls: Sequence[CallRecord], *, tenant: str | None = None
) -> None:
    """One ``llm_calls`` row per attempt, failed ones too, and the run's running totals;
    the calls' budget holds go, the rows now count in their place.

    ``run`` is ``None`` for the synchronous endpoints: the calls are kept for cost alone,
    under ``tenant``. A run's calls are its tenant's.
    """
    owner = run.tenant if run is not None else tenant
    if owner is None:
        raise ValueError("an LLM call without a run needs a tenant")
    budget_holds.release(session, [call.call_id for call in calls if call.call_id])
    for call in calls:
        session.add(
            LlmCall(
                run_id=None if run is None else run.id,
                tenant=owner,
                step=call.step,
                model=call.model,
                attempt=call.attempt,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                cost_usd=call.cost_usd,
                latency_ms=round(call.latency_ms),
                outcome=call.outcome,
            )
        )
        if run is not None:
            run.input_tokens += call.input_tokens
            run.output_tokens += call.output_tokens
            run.cost_usd += call.cost_usd


def upsert_review(
    session: Session,
    run_id: uuid.UUID,
    review: PersonaReview,
    *,
    weight: float,
    model: str,
    temperature: float | None,
    prompt_set_version: str,
    source_run_id: uuid.UUID | None = None,
) -> ReviewRow:
    """Store one persona's review of the run, replacing an earlier one for the same persona.

    ``source_run_id`` marks a review reused from an earlier run rather than written afresh.
    """
    row = session.scalar(
        sa.select(ReviewRow).where(
            ReviewRow.run_id == run_id, ReviewRow.persona_id == review.persona_id
        )
    )
    if row is None:
        row = ReviewRow(run_id=run_id, persona_id=review.persona_id)
        session.add(row)
    row.persona_name = review.persona_name
    row.weight = weight
    row.review = review.model_dump(mode="json")
    row.confidence_score = review.confidence_score
    row.blocking_issues_present = review.has_blocking_issues
    row.security_concerns_present = review.has_security_critical_issue
    row.reused = source_run_id is not None
    row.source_run_id = source_run_id
    row.model = model
    row.temperature = temperature
    row.prompt_set_version = prompt_set_version
    return row


def store_proposal(
    session: Session,
    run_id: uuid.UUID,
    proposal: ExpandedProposal,
    *,
    source: ProposalSource,
    edit_notes: str | None,
    diff: ProposalDiff | None,
) -> None:
    """The run's proposal, replacing one an earlier attempt stored."""
    version = session.scalar(
        sa.select(ProposalVersion).where(ProposalVersion.run_id == run_id)
    ) or ProposalVersion(run_id=run_id)
    version.proposal = proposal.model_dump(mode="json")
    version.source = source
    version.edit_notes = edit_notes
    version.diff = None if diff is None else dict(diff)
    session.add(version)


def store_decision(session: Session, run: Run, decision: Decision) -> None:
    """The run's decision record, and its label and score on the run itself (for lists)."""
    record = session.scalar(
        sa.select(DecisionRecord).where(DecisionRecord.run_id == run.id)
    ) or DecisionRecord(run_id=run.id)
    session.add(record)
    record.decision = decision.decision
    record.overall_score = decision.overall_weighted_confidence
    record.decision_json = decision.model_dump(mode="json")
    run.decision = decision.decision
    run.overall_score = decision.overall_weighted_confidence


def mark_enqueued(session: Session, run_id: uuid.UUID) -> None:
    """Record that Pub/Sub confirmed the run's messages; until then the sweeper resends them."""
    now = utcnow()
    session.execute(
        sa.update(Run).where(Run.id == run_id).values(last_enqueued_at=now, updated_at=now)
    )
