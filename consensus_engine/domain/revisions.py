"""Revisions: apply an author's edits, record what changed, and decide which reviews to redo.

A revision re-runs only the personas whose opinion may have changed and reuses the parent's
review for the rest; every persona gets a stated reason either way, so nothing is skipped
silently.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict

from pydantic import ValidationError

from consensus_engine.domain.aggregation import SCORE_DECIMALS, fmt_score
from consensus_engine.domain.personas import Persona, PersonaSet
from consensus_engine.domain.schemas import PROPOSAL_SECTIONS, ExpandedProposal, PersonaReview

DEFAULT_LOW_CONFIDENCE = 0.70
TEXT_EDIT_SECTION = "proposed_solution"
"""The section a plain-text ``edited_proposal`` replaces."""

EditedProposal = Mapping[str, Any] | str | None


class ProposalSource(StrEnum):
    """Where a run's proposal came from."""

    EXPANDED = "expanded"
    """Written by the expand stage from the idea."""
    EDITED = "edited"
    """The parent's proposal with the author's direct edits, stored verbatim."""
    REVISED = "revised"
    """Rewritten by the model from the edited proposal and the author's edit notes."""


class RevisionError(ValueError):
    """An edit cannot be applied; the message names the section and the problem."""


class FieldChange(TypedDict):
    before: Any
    after: Any


class ProposalDiff(TypedDict):
    changed_fields: dict[str, FieldChange]
    num_changes: int


def edit_as_json(edited: EditedProposal) -> Any:
    """What an edit holds as JSON: a mapping as given, the parsed value of text that starts
    with ``{``, ``None`` for plain text or no edit. Text that starts with ``{`` but is not
    JSON raises ``json.JSONDecodeError`` (a ``ValueError``)."""
    if isinstance(edited, str):
        stripped = edited.strip()
        return json.loads(stripped) if stripped.startswith("{") else None
    return edited


def _parse_text_edit(text: str) -> Mapping[str, Any]:
    stripped = text.strip()
    if not stripped:
        raise RevisionError("edited_proposal is blank; omit it to keep the parent's proposal")
    try:
        parsed = edit_as_json(stripped)
    except json.JSONDecodeError as error:
        raise RevisionError(
            f"edited_proposal starts with '{{' but is not valid JSON: {error.msg} "
            f"(line {error.lineno}, column {error.colno})"
        ) from None
    if parsed is None:
        return {TEXT_EDIT_SECTION: stripped}
    if not isinstance(parsed, dict):
        raise RevisionError("edited_proposal JSON must be an object of sections")
    return parsed


def apply_edits(parent: ExpandedProposal, edited_proposal: EditedProposal) -> ExpandedProposal:
    """The parent proposal with the author's direct edits applied.

    - ``None``: no direct edits; the parent is returned unchanged.
    - a mapping: replaces the named sections (names from ``PROPOSAL_SECTIONS``); the others are
      kept. Unknown names are an error rather than being dropped.
    - a string: if it starts with ``{`` it must be a JSON object and is treated like a mapping;
      otherwise it is plain text that replaces ``proposed_solution``, the section authors most
      often rewrite. A blank string is an error, since it is more likely a mistake than a wish
      to change nothing.
    """
    if edited_proposal is None:
        return parent
    edits = (
        _parse_text_edit(edited_proposal) if isinstance(edited_proposal, str) else edited_proposal
    )
    if not isinstance(edits, Mapping):
        raise RevisionError("edited_proposal must be an object of sections, a string or null")
    unknown = [str(k) for k in edits if k not in PROPOSAL_SECTIONS]
    if unknown:
        raise RevisionError(
            f"unknown proposal section(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(PROPOSAL_SECTIONS)}"
        )
    try:
        return ExpandedProposal.model_validate({**parent.model_dump(), **edits})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "edited_proposal"
        raise RevisionError(f"invalid edit to {where}: {first['msg']}") from None


def proposal_diff(old: ExpandedProposal, new: ExpandedProposal) -> ProposalDiff:
    """Sections whose value differs, in schema order, with both values; stable for storage."""
    changed: dict[str, FieldChange] = {}
    for section in PROPOSAL_SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        if before != after:
            changed[section] = FieldChange(before=before, after=after)
    return ProposalDiff(changed_fields=changed, num_changes=len(changed))


@dataclass(frozen=True)
class RerunPlan:
    """Which personas review again and which reuse the parent's review, each with reasons."""

    rerun: tuple[str, ...]
    reused: tuple[str, ...]
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rerun": list(self.rerun),
            "reused": list(self.reused),
            "reasons": {k: list(v) for k, v in self.reasons.items()},
        }


def _rerun_reasons(
    persona: Persona,
    review: PersonaReview,
    changed_sections: Collection[str],
    low_confidence: float,
) -> list[str]:
    if review.persona_id != persona.id:
        return [f"the parent's review is attributed to {review.persona_id!r}, not {persona.id!r}"]
    reasons = []
    if round(review.confidence_score, SCORE_DECIMALS) < round(low_confidence, SCORE_DECIMALS):
        reasons.append(
            f"parent confidence {fmt_score(review.confidence_score)} is below "
            f"{fmt_score(low_confidence)}"
        )
    if review.has_blocking_issues:
        count = len(review.blocking_texts)
        reasons.append(f"parent review has {count} blocking issue(s)")
    if persona.security_veto and review.concerns:
        reasons.append("holds the security veto and raised concerns that must be re-checked")
    touched = [s for s in PROPOSAL_SECTIONS if s in changed_sections and s in persona.cares_about]
    if touched:
        reasons.append(f"changed section(s) it reviews: {', '.join(touched)}")
    return reasons


def select_personas_to_rerun(
    parent_reviews: Mapping[str, PersonaReview],
    personas: PersonaSet,
    changed_sections: Collection[str],
    *,
    low_confidence: float = DEFAULT_LOW_CONFIDENCE,
) -> RerunPlan:
    """Plan a revision's reviews, in persona-set order.

    A persona re-runs when its parent review is missing or attributed to someone else, its
    confidence was below ``low_confidence``, it had any blocking issue, it holds the security
    veto and raised any concern (a veto holder re-confirms its concerns on every revision), or
    a section it ``cares_about`` changed. Otherwise its parent review is reused.
    """
    unknown = sorted(set(changed_sections) - set(PROPOSAL_SECTIONS))
    if unknown:
        raise RevisionError(f"unknown changed section(s): {', '.join(unknown)}")
    rerun: list[str] = []
    reused: list[str] = []
    reasons: dict[str, tuple[str, ...]] = {}
    for persona in personas:
        review = parent_reviews.get(persona.id)
        if review is None:
            rerun.append(persona.id)
            reasons[persona.id] = ("no review in the parent run",)
            continue
        why = _rerun_reasons(persona, review, changed_sections, low_confidence)
        if why:
            rerun.append(persona.id)
            reasons[persona.id] = tuple(why)
        else:
            reused.append(persona.id)
            reasons[persona.id] = (
                f"reused: parent confidence {fmt_score(review.confidence_score)} is at least "
                f"{fmt_score(low_confidence)}, no blocking issues, no change to the sections "
                "it reviews",
            )
    return RerunPlan(rerun=tuple(rerun), reused=tuple(reused), reasons=reasons)


def plan_revision(
    parent: ExpandedProposal,
    revised: ExpandedProposal,
    parent_reviews: Mapping[str, PersonaReview],
    personas: PersonaSet,
    *,
    forced: Collection[str] | None = None,
) -> RerunPlan:
    """The one plan of a revision: the API's answer and the worker's record both come from it.

    With ``forced`` (the author's ``rerun_personas``) exactly those personas re-run, plus
    any the parent has no review from, since there is nothing to reuse; otherwise the
    personas are chosen from the sections that differ between ``parent`` and ``revised``.
    Either way the personas are listed in persona-set order.
    """
    if forced is None:
        changed = proposal_diff(parent, revised)["changed_fields"]
        return select_personas_to_rerun(parent_reviews, personas, changed)
    missing = [p for p in personas.ids if p not in parent_reviews]
    rerun = [p for p in personas.ids if p in forced or p in missing]
    reused = [p for p in personas.ids if p not in rerun]
    reasons: dict[str, tuple[str, ...]] = {
        p: ("no review in the parent run",) if p in missing else ("chosen to re-run",)
        for p in rerun
    }
    reasons.update(dict.fromkeys(reused, ("not chosen to re-run: the parent's review is reused",)))
    return RerunPlan(rerun=tuple(rerun), reused=tuple(reused), reasons=reasons)
