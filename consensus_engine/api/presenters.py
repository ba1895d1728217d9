"""Stored runs turned into the API's response models.

Kept apart from the routes so that every answer shows a run the same way, whichever
route reads it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from consensus_engine.api.schemas import (
    ChairOut,
    PersonaOut,
    ProposalOut,
    ReviewOut,
    RevisionOut,
    RunDetail,
    RunErrorOut,
    RunLinks,
    RunListItem,
    RunModels,
    RunUsage,
    StepOut,
    StepUsageOut,
)
from consensus_engine.db import reads
from consensus_engine.db.models import Run
from consensus_engine.domain.council import Council
from consensus_engine.domain.runs import (
    CHAIR_STEP,
    EXPAND_STEP,
    RunStatus,
    RunType,
    persona_of_step,
)
from consensus_engine.domain.schemas import ChairReport, Decision, ExpandedProposal, PersonaReview


def run_path(run_id: uuid.UUID) -> str:
    """Where the run's details are: its ``Location`` and its ``links.self``."""
    return f"/v1/runs/{run_id}"


def links(run_id: uuid.UUID) -> RunLinks:
    return RunLinks(self=run_path(run_id), events=f"/v1/runs/{run_id}/events")


def accepted_fields(run: Run, enqueued: bool, message: str) -> dict[str, Any]:
    """What every answer to a stored run (``RunAccepted`` and its subclasses) carries."""
    return {
        "run_id": run.id,
        "status": run.status,
        "run_type": run.run_type,
        "priority": run.priority,
        "created_at": run.created_at,
        "enqueued": enqueued,
        "message": message,
        "links": links(run.id),
    }


def list_item(row: Row[*tuple[Any, ...]]) -> RunListItem:
    """The row as the API lists it: the two carry the same fields, by name."""
    return RunListItem.model_validate(row, from_attributes=True)


def stored_decision(run: Run) -> Decision | None:
    """The run's decision, once its aggregate step stored one."""
    record = run.decision_record
    return Decision.model_validate(record.decision_json) if record is not None else None


def _proposal(run: Run) -> ProposalOut | None:
    version = run.proposal
    if version is None:
        return None
    return ProposalOut(
        source=version.source.value,
        proposal=ExpandedProposal.model_validate(version.proposal),
        diff=version.diff,
        edit_notes=version.edit_notes,
        created_at=version.created_at,
    )


def _steps(run: Run) -> list[StepOut]:
    return [
        StepOut(
            step_name=step.step_name,
            step_order=step.step_order,
            persona_id=persona_of_step(step.step_name),
            status=step.status,
            attempts=step.attempts,
            reused=bool(step.step_metadata.get("reused", False)),
            started_at=step.started_at,
            completed_at=step.completed_at,
            updated_at=step.updated_at,
            error=step.error,
            metadata=step.step_metadata,
        )
        for step in run.steps
    ]


def _reviews(run: Run) -> list[ReviewOut]:
    order = {persona["id"]: index for index, persona in enumerate(run.personas)}
    rows = sorted(run.reviews, key=lambda row: (order.get(row.persona_id, len(order)), row.id))
    return [
        ReviewOut(
            **PersonaReview.model_validate(row.review).model_dump(),
            weight=row.weight,
            blocking_issues_present=row.blocking_issues_present,
            security_concerns_present=row.security_concerns_present,
            reused=row.reused,
            source_run_id=row.source_run_id,
            model=row.model,
            provider=row.provider,
            temperature=row.temperature,
            prompt_set_version=row.prompt_set_version,
            first_round_review=None
            if row.first_round_review is None
            else PersonaReview.model_validate(row.first_round_review),
            created_at=row.created_at,
        )
        for row in rows
    ]


def _chair(run: Run, council: Council) -> ChairOut | None:
    step = next((s for s in run.steps if s.step_name == CHAIR_STEP), None)
    if council.chair is None or step is None:
        return None
    written = run.chair_report
    return ChairOut(
        status=step.status,
        model=council.chair.model if written is None else written.model,
        provider=None if written is None else written.provider,
        fallback=False if written is None else written.fallback,
        model_written=True,
        report=None if written is None else ChairReport.model_validate(written.report),
        error=step.error,
    )


def _usage(session: Session, run: Run) -> RunUsage:
    by_step = reads.usage_by_step(session, run.id)
    return RunUsage(
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        total_tokens=run.input_tokens + run.output_tokens,
        cost_usd=float(run.cost_usd),
        llm_calls=sum(item.calls for item in by_step),
        by_step=[
            StepUsageOut(
                step=item.step,
                llm_calls=item.calls,
                input_tokens=item.input_tokens,
                output_tokens=item.output_tokens,
                cost_usd=float(item.cost_usd),
            )
            for item in by_step
        ],
    )


def _revision(run: Run) -> RevisionOut | None:
    if run.run_type is not RunType.REVISION:
        return None
    expand = next((s for s in run.steps if s.step_name == EXPAND_STEP), None)
    plan = expand.step_metadata.get("plan") if expand is not None else None
    requested = run.parameters.get("rerun_personas")
    return RevisionOut(
        parent_run_id=run.parent_run_id,
        edited_proposal=run.edited_proposal,
        edit_notes=run.edit_notes,
        rerun_personas=list(requested) if requested is not None else None,
        plan=plan if isinstance(plan, dict) else None,
    )


def run_detail(session: Session, run: Run) -> RunDetail:
    """Everything about the run; ``run`` as ``reads.get_run(detailed=True)`` loads it. ``session``
    reads the LLM usage, which the run does not hold."""
    failed = run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
    council = Council.of(run.parameters)
    return RunDetail(
        run_id=run.id,
        status=run.status,
        run_type=run.run_type,
        priority=run.priority,
        parent_run_id=run.parent_run_id,
        created_at=run.created_at,
        updated_at=run.updated_at,
        queued_at=run.queued_at,
        started_at=run.started_at,
        completed_at=run.completed_at,
        deadline_at=run.deadline_at,
        idea=run.idea,
        extra_context=run.extra_context,
        models=RunModels(
            expand_model=run.expand_model,
            expand_temperature=run.expand_temperature,
            review_model=run.review_model,
            review_temperature=run.review_temperature,
            review_rounds=council.rounds,
            chair_model=None if council.chair is None else council.chair.model,
            chair_fallback_model=council.chair_fallback,
        ),
        personas=[PersonaOut.model_validate(persona) for persona in run.personas],
        schema_version=run.schema_version,
        prompt_set_version=run.prompt_set_version,
        proposal=_proposal(run),
        reviews=_reviews(run),
        decision=stored_decision(run),
        steps=_steps(run),
        usage=_usage(session, run),
        error=RunErrorOut(code=run.error_code, message=run.error) if failed else None,
        revision=_revision(run),
        chair=_chair(run, council),
        links=links(run.id),
    )
