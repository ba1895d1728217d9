"""A revision's plan before it runs: the edits checked against the parent, and the personas
that will re-run, computed exactly as the expand stage will."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy.orm import Session

from consensus_engine.db import reads
from consensus_engine.db.models import Run
from consensus_engine.domain.revisions import (
    EditedProposal,
    RerunPlan,
    RevisionError,
    apply_edits,
    edit_as_json,
    plan_revision,
)
from consensus_engine.domain.schemas import PROPOSAL_SECTIONS, PersonaReview
from consensus_engine.pipeline.refusals import InvalidRevision, RunStateConflict
from consensus_engine.pipeline.work import run_personas


def preview_plan(
    session: Session,
    parent: Run,
    edited_proposal: EditedProposal,
    rerun_personas: Collection[str] | None,
) -> RerunPlan:
    """The plan of a revision of ``parent``; before edit notes, which only the model applies.

    Refuses personas the parent does not have, unknown sections and edits that do not
    fit the proposal, without echoing what the client sent.
    """
    personas = run_personas(parent)
    if rerun_personas is not None and any(p not in personas for p in rerun_personas):
        raise InvalidRevision(
            "rerun_personas", f"unknown persona id(s); this run's: {', '.join(personas.ids)}"
        )
    proposal = reads.load_proposal(session, parent.id)
    if proposal is None:
        raise RunStateConflict("the parent run has no proposal to revise")
    if not set(_edited_sections(edited_proposal)) <= set(PROPOSAL_SECTIONS):
        raise InvalidRevision(
            "edited_proposal",
            f"unknown proposal section(s); known: {', '.join(PROPOSAL_SECTIONS)}",
        )
    try:
        edited = apply_edits(proposal, edited_proposal)
    except RevisionError as error:
        raise InvalidRevision("edited_proposal", str(error)) from None
    reviews = {
        pid: PersonaReview.model_validate(row.review)
        for pid, row in reads.load_reviews(session, parent.id).items()
    }
    return plan_revision(proposal, edited, reviews, personas, forced=rerun_personas)


def _edited_sections(edited: EditedProposal) -> Collection[str]:
    """The section names an edit addresses, to refuse unknown ones without echoing them
    (the domain's message names them). Text that is not a JSON object addresses none here;
    ``apply_edits`` judges it."""
    try:
        parsed = edit_as_json(edited)
    except ValueError:
        return []
    return [str(key) for key in parsed] if isinstance(parsed, Mapping) else []
