"""Revisions: a completed run's proposal edited, and the personas that need it re-run;
and the comparison of any two runs (a revision with its parent, typically)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from consensus_engine.api.errors import ApiError, conflict, invalid
from consensus_engine.api.idempotency import (
    IdempotencyKey,
    replay,
    replayed,
    request_fingerprint,
    store,
)
from consensus_engine.api.inputs import model_choices, storable
from consensus_engine.api.openapi import RUN_LINKS, errors
from consensus_engine.api.presenters import stored_decision
from consensus_engine.api.publishing import publish_new
from consensus_engine.api.schemas import (
    PlanBasis,
    RevisionAccepted,
    RevisionPlan,
    RevisionRequest,
    RunDiff,
)
from consensus_engine.api.state import PrincipalDep, SessionDep, StateDep
from consensus_engine.api.tenancy import check_capacity, not_found, owned
from consensus_engine.db import queries, repository
from consensus_engine.db.models import Run
from consensus_engine.domain.diff import RunSnapshot, diff_runs
from consensus_engine.domain.personas import PersonaSet
from consensus_engine.domain.revisions import (
    RerunPlan,
    RevisionError,
    apply_edits,
    proposal_diff,
    select_personas_to_rerun,
)
from consensus_engine.domain.runs import RunStatus
from consensus_engine.domain.schemas import PROPOSAL_SECTIONS, ExpandedProposal, PersonaReview
from consensus_engine.pipeline.inline import ModelChoice
from consensus_engine.pipeline.submit import RevisionRefused, submit_revision
from consensus_engine.pipeline.work import run_personas

router = APIRouter(prefix="/v1", tags=["runs"])


# -- the plan -----------------------------------------------------------------------------------


def _forced_plan(
    personas: PersonaSet, parent_reviews: dict[str, PersonaReview], forced: Sequence[str]
) -> RerunPlan:
    """The plan the expand stage applies for explicit ``rerun_personas``: those, plus any
    persona the parent has no review from (there is nothing to reuse)."""
    missing = [p for p in personas.ids if p not in parent_reviews]
    rerun = [p for p in personas.ids if p in forced or p in missing]
    reused = [p for p in personas.ids if p not in rerun]
    reasons: dict[str, tuple[str, ...]] = {
        p: ("no review in the parent run",) if p in missing else ("chosen to re-run",)
        for p in rerun
    }
    reasons.update(dict.fromkeys(reused, ("not chosen to re-run: the parent's review is reused",)))
    return RerunPlan(rerun=tuple(rerun), reused=tuple(reused), reasons=reasons)


def _edited_sections(edited: str | dict[str, Any] | None) -> list[str]:
    """The section names an edit addresses, to refuse unknown ones without echoing them
    (the domain's message names them). Text that is not a JSON object addresses none here;
    ``apply_edits`` judges it."""
    if isinstance(edited, str) and edited.strip().startswith("{"):
        try:
            parsed = json.loads(edited)
        except ValueError:
            return []
        edited = parsed if isinstance(parsed, dict) else None
    return [str(key) for key in edited] if isinstance(edited, dict) else []


def _plan(
    session: Session,
    parent: Run,
    edited_proposal: str | dict[str, Any] | None,
    edit_notes: str | None,
    rerun_personas: list[str] | None,
) -> RevisionPlan:
    """Check the edits against the parent's proposal and say which personas will re-run."""
    personas = run_personas(parent)
    if rerun_personas is not None:
        unknown = [p for p in rerun_personas if p not in personas]
        if unknown:
            raise invalid(
                "rerun_personas", f"unknown persona id(s); this run's: {', '.join(personas.ids)}"
            )
    proposal = repository.load_proposal(session, parent.id)
    if proposal is None:
        raise conflict("the parent run has no proposal to revise")
    if not set(_edited_sections(edited_proposal)) <= set(PROPOSAL_SECTIONS):
        raise invalid(
            "edited_proposal",
            f"unknown proposal section(s); known: {', '.join(PROPOSAL_SECTIONS)}",
        )
    try:
        edited = apply_edits(proposal, edited_proposal)
    except RevisionError as error:
        raise invalid("edited_proposal", str(error)) from None
    reviews = {
        pid: PersonaReview.model_validate(row.review)
        for pid, row in repository.load_reviews(session, parent.id).items()
    }
    basis: PlanBasis
    if rerun_personas is not None:
        plan = _forced_plan(personas, reviews, rerun_personas)
        basis, exact = "rerun_personas", True
        note = "exact: the personas you chose, plus any without a review in the parent run"
    else:
        changed = proposal_diff(proposal, edited)["changed_fields"]
        plan = select_personas_to_rerun(reviews, personas, changed)
        if edit_notes is None:
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
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> RevisionAccepted:
    """A new run (``run_type`` revision) whose proposal is the parent's with the edits
    applied; ``plan`` says which personas re-run (see its ``exact`` and ``note``)."""
    settings = state.settings
    storable("edited_proposal", body.edited_proposal)
    storable("edit_notes", body.edit_notes)
    edit_notes = body.edit_notes.strip() if body.edit_notes and body.edit_notes.strip() else None
    if body.edited_proposal is not None:
        _check_length(
            "edited_proposal",
            _edit_size(body.edited_proposal),
            settings.max_edited_proposal_length,
        )
    if edit_notes is not None:
        _check_length("edit_notes", len(edit_notes), settings.max_edit_notes_length)
    rerun_personas = (
        None if body.rerun_personas is None else list(dict.fromkeys(body.rerun_personas))
    )
    if body.edited_proposal is None and edit_notes is None and not rerun_personas:
        raise invalid(
            "edited_proposal",
            "give at least one of edited_proposal, edit_notes or a non-empty rerun_personas",
        )
    tenant = principal.tenant
    parent = owned(session, run_id, tenant)
    fingerprint = request_fingerprint(f"revision:{run_id}", body.model_dump(mode="json"))
    if idempotency_key is not None:
        existing = replayed(session, tenant, idempotency_key, fingerprint)
        if existing is not None:
            plan = _plan(session, parent, body.edited_proposal, edit_notes, rerun_personas)
            return RevisionAccepted(**replay(response, existing), parent_run_id=run_id, plan=plan)
    if parent.status is not RunStatus.COMPLETED:
        raise conflict(
            f"run {run_id} is {parent.status.value}; only a completed run can be revised",
            status=parent.status.value,
        )
    plan = _plan(session, parent, body.edited_proposal, edit_notes, rerun_personas)
    check_capacity(session, state, tenant)
    expand, review = model_choices(
        body,
        ModelChoice(parent.expand_model, parent.expand_temperature),
        ModelChoice(parent.review_model, parent.review_temperature),
    )

    def create() -> Run:
        try:
            return submit_revision(
                session,
                parent,
                job_timeout_seconds=settings.worker_job_timeout_seconds,
                edited_proposal=body.edited_proposal,
                edit_notes=edit_notes,
                expand=expand,
                review=review,
                rerun_personas=rerun_personas,
                priority=body.priority,
                idempotency_key=idempotency_key,
            )
        except RevisionRefused as error:
            raise conflict(str(error)) from None

    run, created = store(session, tenant, idempotency_key, fingerprint, create)
    if not created:
        return RevisionAccepted(**replay(response, run), parent_run_id=run_id, plan=plan)
    return RevisionAccepted(**publish_new(state, response, run), parent_run_id=run_id, plan=plan)


# -- diff ---------------------------------------------------------------------------------------


def _snapshot(session: Session, run_id: uuid.UUID, tenant: str) -> RunSnapshot:
    run = queries.run_detail(session, run_id, tenant=tenant)
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
