"""Revisions: a completed run's proposal edited, and the personas that need it re-run;
and the comparison of any two runs (a revision with its parent, typically)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from consensus_engine.api.accepted import accepted
from consensus_engine.api.errors import ApiError, invalid
from consensus_engine.api.idempotency import IdempotencyKey, idempotency
from consensus_engine.api.inputs import catalogued_models, storable, storable_edit
from consensus_engine.api.openapi import RUN_LINKS, errors
from consensus_engine.api.presenters import stored_decision
from consensus_engine.api.schemas import (
    PlanBasis,
    RevisionAccepted,
    RevisionPlan,
    RevisionRequest,
    RunDiff,
)
from consensus_engine.api.state import ApiState, PrincipalDep, SessionDep, StateDep
from consensus_engine.api.tenancy import not_found, refusal
from consensus_engine.db import reads
from consensus_engine.domain.diff import RunSnapshot, diff_runs
from consensus_engine.domain.revisions import RerunPlan
from consensus_engine.domain.schemas import ExpandedProposal, PersonaReview
from consensus_engine.pipeline.refusals import RunRefused
from consensus_engine.pipeline.service import NewRevision

router = APIRouter(prefix="/v1", tags=["runs"])


# -- the plan -----------------------------------------------------------------------------------


def _presented(
    plan: RerunPlan, rerun_personas: tuple[str, ...] | None, notes: bool
) -> RevisionPlan:
    """The service's plan, with how exact it is: edit notes are applied by the model when
    the revision starts, so until then the plan only knows the direct edits."""
    basis: PlanBasis
    if rerun_personas is not None:
        basis, exact = "rerun_personas", True
        note = "exact: the personas you chose, plus any without a review in the parent run"
    elif not notes:
        basis, exact = "direct_edits", True
        note = "exact: computed from the sections your edits change"
    else:
        basis, exact = "direct_edits_then_notes", False
        note = (
            "at least: computed from your direct edits only. The edit notes are applied "
            "by the model when the revision starts, so a persona listed as reused also "
            "re-runs if the notes change a section it reviews; the final plan appears "
            "in the run's revision.plan once its expand step completed"
        )
    return RevisionPlan(
        exact=exact,
        basis=basis,
        rerun=list(plan.rerun),
        reused=list(plan.reused),
        reasons={k: list(v) for k, v in plan.reasons.items()},
        note=note,
    )


# -- revise -------------------------------------------------------------------------------------


def _check_length(field: str, size: int, limit: int) -> None:
    if size > limit:
        raise invalid(field, f"{field} is {size} characters long; the limit is {limit}")


def _edit_size(edited: str | dict[str, Any]) -> int:
    return len(edited) if isinstance(edited, str) else len(json.dumps(edited, ensure_ascii=False))


@router.post(
    "/runs/{run_id}/revisions",
    operation_id="revise_run",
    status_code=202,
    response_model=RevisionAccepted,
    summary="Revise a completed run: edit its proposal and re-run the personas that need it",
    responses={
        **errors(400, 404, 409, 413),
        200: {
            "model": RevisionAccepted,
            "description": "idempotent replay of an earlier request with this Idempotency-Key",
        },
        202: {
            "description": "stored; see `enqueued` and `plan`",
            "links": {
                **RUN_LINKS,
                "DiffWithParent": {
                    "operationId": "diff_runs",
                    "parameters": {
                        "run_id": "$response.body#/parent_run_id",
                        "other_id": "$response.body#/run_id",
                    },
                },
            },
        },
    },
)
def revise(
    run_id: uuid.UUID,
    body: RevisionRequest,
    response: Response,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> RevisionAccepted:
    """A new run (``run_type`` revision) whose proposal is the parent's with the edits
    applied; ``plan`` says which personas re-run (see its ``exact`` and ``note``)."""
    revision = _revision(state, body)
    key = idempotency(idempotency_key, f"revision:{run_id}", body.model_dump(mode="json"))
    try:
        outcome = state.runs.revise(run_id, revision, tenant=principal.tenant, idempotency=key)
    except RunRefused as error:
        raise refusal(error) from None
    assert outcome.plan is not None
    return RevisionAccepted(
        **accepted(response, outcome, state.settings.sweeper_requeue_after_seconds),
        parent_run_id=run_id,
        plan=_presented(outcome.plan, revision.rerun_personas, revision.edit_notes is not None),
    )


@router.post(
    "/runs/{run_id}/revisions/plan",
    operation_id="preview_revision",
    response_model=RevisionPlan,
    summary="Which personas a revision would re-run and which it would reuse; stores nothing",
    responses=errors(404, 409, 413),
)
def preview_revision(
    run_id: uuid.UUID, body: RevisionRequest, state: StateDep, principal: PrincipalDep
) -> RevisionPlan:
    """The ``plan`` that ``POST /v1/runs/{run_id}/revisions`` would answer with this body."""
    revision = _revision(state, body)
    try:
        plan = state.runs.preview_revision(run_id, revision, tenant=principal.tenant)
    except RunRefused as error:
        raise refusal(error) from None
    return _presented(plan, revision.rerun_personas, revision.edit_notes is not None)


def _revision(state: ApiState, body: RevisionRequest) -> NewRevision:
    """The request checked at the edge (sizes, storable text, known models), as the
    service takes it; what only the parent can tell is the service's to check."""
    settings = state.settings
    storable_edit("edited_proposal", body.edited_proposal)
    storable("edit_notes", body.edit_notes)
    catalogued_models(state, body)
    edit_notes = body.edit_notes.strip() if body.edit_notes and body.edit_notes.strip() else None
    if body.edited_proposal is not None:
        _check_length(
            "edited_proposal",
            _edit_size(body.edited_proposal),
            settings.max_edited_proposal_length,
        )
    if edit_notes is not None:
        _check_length("edit_notes", len(edit_notes), settings.max_edit_notes_length)
    rerun = None if body.rerun_personas is None else tuple(dict.fromkeys(body.rerun_personas))
    if body.edited_proposal is None and edit_notes is None and not rerun:
        raise invalid(
            "edited_proposal",
            "give at least one of edited_proposal, edit_notes or a non-empty rerun_personas",
        )
    return NewRevision(
        edited_proposal=body.edited_proposal,
        edit_notes=edit_notes,
        rerun_personas=rerun,
        expand_model=body.expand_model,
        expand_temperature=body.expand_temperature,
        review_model=body.review_model,
        review_temperature=body.review_temperature,
        priority=body.priority,
    )


# -- diff ---------------------------------------------------------------------------------------


def _snapshot(session: Session, run_id: uuid.UUID, tenant: str) -> RunSnapshot:
    run = reads.get_run(session, run_id, tenant=tenant, detailed=True)
    if run is None:
        raise not_found(run_id)
    return RunSnapshot(
        run_id=str(run.id),
        created_at=run.created_at,
        parent_run_id=str(run.parent_run_id) if run.parent_run_id else None,
        proposal=(ExpandedProposal.model_validate(run.proposal.proposal) if run.proposal else None),
        reviews={row.persona_id: PersonaReview.model_validate(row.review) for row in run.reviews},
        decision=stored_decision(run),
    )


@router.get(
    "/runs/{run_id}/diff/{other_id}",
    operation_id="diff_runs",
    response_model=RunDiff,
    summary="Compare two runs: proposal sections, each persona's view, the decision",
    responses=errors(400, 404),
)
def diff(
    run_id: uuid.UUID, other_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> RunDiff:
    """``run_id`` is run1 (the old side), ``other_id`` run2 (the new side)."""
    if run_id == other_id:
        raise ApiError(400, "SAME_RUN", "compare two different runs")
    old = _snapshot(session, run_id, principal.tenant)
    new = _snapshot(session, other_id, principal.tenant)
    return RunDiff.model_validate(diff_runs(old, new))
