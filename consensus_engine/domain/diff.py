"""Run-to-run comparison: what changed in the proposal, in each persona's view and in the decision.

Works on :class:`RunSnapshot` values, so it needs no database, and returns plain JSON-ready
dicts. Absence is always tested with ``is None``: a confidence of 0.0 is a real score.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consensus_engine.domain.schemas import (
    PROPOSAL_SECTIONS,
    Decision,
    ExpandedProposal,
    PersonaReview,
)

MAX_DIFF_LINES = 50
CONTEXT_LINES = 3
_DELTA_DECIMALS = 6


@dataclass(frozen=True)
class RunSnapshot:
    """The parts of a stored run that a comparison needs; any of them may be absent."""

    run_id: str
    created_at: datetime | None = None
    parent_run_id: str | None = None
    proposal: ExpandedProposal | None = None
    reviews: Mapping[str, PersonaReview] = field(default_factory=dict)
    decision: Decision | None = None


def _relationship(a: RunSnapshot, b: RunSnapshot) -> str:
    if b.parent_run_id is not None and b.parent_run_id == a.run_id:
        return "run1_is_parent_of_run2"
    if a.parent_run_id is not None and a.parent_run_id == b.run_id:
        return "run2_is_parent_of_run1"
    return "unrelated"


def _metadata(a: RunSnapshot, b: RunSnapshot) -> dict[str, Any]:
    relationship = _relationship(a, b)
    return {
        "run1_id": a.run_id,
        "run2_id": b.run_id,
        "run1_created_at": a.created_at.isoformat() if a.created_at else None,
        "run2_created_at": b.created_at.isoformat() if b.created_at else None,
        "run1_parent_run_id": a.parent_run_id,
        "run2_parent_run_id": b.parent_run_id,
        "is_parent_child": relationship != "unrelated",
        "relationship": relationship,
    }


def _section_lines(value: str | list[str]) -> list[str]:
    if isinstance(value, list):
        return [f"- {item}" for item in value]
    return value.splitlines()


def _unified(old: list[str], new: list[str], section: str) -> tuple[str, bool]:
    lines = list(
        difflib.unified_diff(
            old,
            new,
            fromfile=f"run1/{section}",
            tofile=f"run2/{section}",
            n=CONTEXT_LINES,
            lineterm="",
        )
    )
    return "\n".join(lines[:MAX_DIFF_LINES]), len(lines) > MAX_DIFF_LINES


def _section_change(
    section: str, old: ExpandedProposal | None, new: ExpandedProposal | None
) -> dict[str, Any]:
    old_lines = _section_lines(getattr(old, section)) if old is not None else None
    new_lines = _section_lines(getattr(new, section)) if new is not None else None
    old_length = len("\n".join(old_lines)) if old_lines is not None else None
    new_length = len("\n".join(new_lines)) if new_lines is not None else None
    result: dict[str, Any] = {
        "status": "",
        "diff": "",
        "diff_truncated": False,
        "old_length": old_length,
        "new_length": new_length,
    }
    if old_lines is None or new_lines is None:
        if old_lines is None and new_lines is None:
            result["status"] = "both_missing"
        else:
            result["status"] = "run1_missing" if old_lines is None else "run2_missing"
        return result
    if old_lines == new_lines:
        result["status"] = "unchanged"
        return result
    if not old_lines:
        result["status"] = "added"
    elif not new_lines:
        result["status"] = "removed"
    else:
        result["status"] = "modified"
    result["diff"], result["diff_truncated"] = _unified(old_lines, new_lines, section)
    return result


def _added_removed(old: Sequence[str], new: Sequence[str]) -> tuple[list[str], list[str]]:
    """Items by exact text, order preserved; a reworded item counts as removed plus added."""
    old_set, new_set = set(old), set(new)
    return [t for t in new if t not in old_set], [t for t in old if t not in new_set]


def _delta(old: float | None, new: float | None) -> float | None:
    if old is None or new is None:
        return None
    return round(new - old, _DELTA_DECIMALS)


def _review_facts(review: PersonaReview | None) -> dict[str, Any]:
    if review is None:
        return {"confidence": None, "blocking": None, "security": None}
    return {
        "confidence": review.confidence_score,
        "blocking": review.has_blocking_issues,
        "security": review.has_security_critical_issue,
    }


def _persona_delta(old: PersonaReview | None, new: PersonaReview | None) -> dict[str, Any]:
    if old is not None and new is not None:
        status = "present_in_both"
    else:
        status = "added_in_run2" if old is None else "removed_in_run2"
    before, after = _review_facts(old), _review_facts(new)
    concerns_added, concerns_removed = _added_removed(
        [c.text for c in old.concerns] if old else [],
        [c.text for c in new.concerns] if new else [],
    )
    recs_added, recs_removed = _added_removed(
        old.recommendations if old else [], new.recommendations if new else []
    )
    both = status == "present_in_both"
    return {
        "status": status,
        "old_confidence": before["confidence"],
        "new_confidence": after["confidence"],
        "confidence_delta": _delta(before["confidence"], after["confidence"]),
        "old_blocking": before["blocking"],
        "new_blocking": after["blocking"],
        "blocking_changed": both and before["blocking"] != after["blocking"],
        "old_security_critical": before["security"],
        "new_security_critical": after["security"],
        "security_changed": both and before["security"] != after["security"],
        "concerns_added": concerns_added,
        "concerns_removed": concerns_removed,
        "recommendations_added": recs_added,
        "recommendations_removed": recs_removed,
    }


def _decision_delta(old: Decision | None, new: Decision | None) -> dict[str, Any]:
    old_score = old.overall_weighted_confidence if old is not None else None
    new_score = new.overall_weighted_confidence if new is not None else None
    old_label = old.decision.value if old is not None else None
    new_label = new.decision.value if new is not None else None
    return {
        "old_confidence": old_score,
        "new_confidence": new_score,
        "confidence_delta": _delta(old_score, new_score),
        "old_decision": old_label,
        "new_decision": new_label,
        "decision_changed": old is not None and new is not None and old_label != new_label,
    }


def diff_runs(a: RunSnapshot, b: RunSnapshot) -> dict[str, Any]:
    """Compare run ``a`` (run1) with run ``b`` (run2); every value is JSON-serialisable."""
    persona_ids = sorted(set(a.reviews) | set(b.reviews))
    return {
        "metadata": _metadata(a, b),
        "proposal_changes": {
            section: _section_change(section, a.proposal, b.proposal)
            for section in PROPOSAL_SECTIONS
        },
        "persona_deltas": [
            {"persona_id": pid, **_persona_delta(a.reviews.get(pid), b.reviews.get(pid))}
            for pid in persona_ids
        ],
        "decision_delta": _decision_delta(a.decision, b.decision),
    }
