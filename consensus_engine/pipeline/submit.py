"""Creating runs: what the API, the CLI and the demo store before enqueuing expand.

The run and all its pending steps are written in the caller's transaction; the
caller commits, sends the expand message, then calls :func:`mark_enqueued`. A run
whose publish never got confirmed keeps ``last_enqueued_at`` empty, and the
sweeper sends it later, so a commit is never lost for want of a message.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consensus_engine.db import repository
from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.personas import PersonaSet
from consensus_engine.domain.prompts import PROMPT_SET_VERSION
from consensus_engine.domain.revisions import EditedProposal
from consensus_engine.domain.runs import Priority, RunStatus, RunType, step_names
from consensus_engine.domain.schemas import SCHEMA_VERSION
from consensus_engine.pipeline.inline import ModelChoice
from consensus_engine.pipeline.work import run_personas


class RevisionRefused(ValueError):
    """The parent run cannot be revised (yet); the message says why."""


def submit_run(
    session: Session,
    *,
    idea: str,
    personas: PersonaSet,
    expand: ModelChoice,
    review: ModelChoice,
    job_timeout_seconds: float,
    extra_context: str | dict[str, Any] | None = None,
    tenant: str = "default",
    priority: Priority = Priority.NORMAL,
    idempotency_key: str | None = None,
) -> Run:
    """A queued run of ``idea`` with one pending step per stage and persona."""
    return repository.create_run(
        session,
        idea=idea,
        extra_context=extra_context,
        expand_model=expand.model,
        expand_temperature=expand.temperature,
        review_model=review.model,
        review_temperature=review.temperature,
        personas=[p.to_dict() for p in personas],
        schema_version=SCHEMA_VERSION,
        prompt_set_version=PROMPT_SET_VERSION,
        step_names=step_names(list(personas.ids)),
        tenant=tenant,
        priority=priority,
        idempotency_key=idempotency_key,
        deadline_at=utcnow() + timedelta(seconds=job_timeout_seconds),
    )


def submit_revision(
    session: Session,
    parent: Run,
    *,
    job_timeout_seconds: float,
    edited_proposal: EditedProposal = None,
    edit_notes: str | None = None,
    expand: ModelChoice | None = None,
    review: ModelChoice | None = None,
    rerun_personas: Sequence[str] | None = None,
    priority: Priority | None = None,
    idempotency_key: str | None = None,
) -> Run:
    """A queued revision of a completed run; the parent's models unless overridden.

    ``rerun_personas`` forces exactly those personas to review again (the others reuse
    the parent's reviews); without it the expand stage chooses from what changed.
    """
    if parent.status is not RunStatus.COMPLETED:
        raise RevisionRefused(
            f"run {parent.id} is {parent.status.value}; only a completed run can be revised"
        )
    personas = run_personas(parent)
    if rerun_personas is not None:
        unknown = [p for p in rerun_personas if p not in personas]
        if unknown:
            raise RevisionRefused(f"unknown persona(s) to re-run: {', '.join(unknown)}")
    expand = expand or ModelChoice(parent.expand_model, parent.expand_temperature)
    review = review or ModelChoice(parent.review_model, parent.review_temperature)
    edited: Any = dict(edited_proposal) if isinstance(edited_proposal, dict) else edited_proposal
    return repository.create_run(
        session,
        idea=parent.idea,
        extra_context=parent.extra_context,
        edited_proposal=edited,
        edit_notes=edit_notes,
        expand_model=expand.model,
        expand_temperature=expand.temperature,
        review_model=review.model,
        review_temperature=review.temperature,
        personas=parent.personas,
        schema_version=SCHEMA_VERSION,
        prompt_set_version=PROMPT_SET_VERSION,
        step_names=step_names(list(personas.ids)),
        tenant=parent.tenant,
        run_type=RunType.REVISION,
        priority=priority or parent.priority,
        parent_run_id=parent.id,
        idempotency_key=idempotency_key,
        parameters={} if rerun_personas is None else {"rerun_personas": list(rerun_personas)},
        deadline_at=utcnow() + timedelta(seconds=job_timeout_seconds),
    )


def mark_enqueued(session: Session, run_id: uuid.UUID) -> None:
    """Record that Pub/Sub confirmed the run's expand message."""
    now = utcnow()
    session.execute(
        sa.update(Run).where(Run.id == run_id).values(last_enqueued_at=now, updated_at=now)
    )
