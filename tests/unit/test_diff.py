"""Run diff: lineage, per-section changes, persona deltas, decision delta, 0.0 as a value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from consensus_engine.domain.aggregation import aggregate
from consensus_engine.domain.diff import MAX_DIFF_LINES, RunSnapshot, diff_runs
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.schemas import (
    PROPOSAL_SECTIONS,
    BlockingIssue,
    Concern,
    Decision,
    ExpandedProposal,
    PersonaReview,
)

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def proposal(**changes: Any) -> ExpandedProposal:
    fields: dict[str, Any] = {
        "title": "Shared parking",
        "summary": "Neighbours rent out idle spaces.",
        "problem_statement": "Parking is scarce.",
        "proposed_solution": "Line one.\nLine two.\nLine three.",
        "assumptions": ["Owners want income"],
        "scope_non_goals": [],
        **changes,
    }
    return ExpandedProposal(**fields)


def review(
    persona_id: str,
    score: float,
    *,
    concerns: tuple[str, ...] = (),
    recommendations: tuple[str, ...] = (),
    blocking: str | None = None,
    security_critical: bool = False,
) -> PersonaReview:
    return PersonaReview(
        persona_id=persona_id,
        persona_name=persona_id,
        confidence_score=score,
        summary="Review.",
        strengths=[],
        concerns=[Concern(text=c, is_blocking=False) for c in concerns],
        recommendations=list(recommendations),
        blocking_issues=(
            [BlockingIssue(text=blocking, security_critical=security_critical)] if blocking else []
        ),
        estimated_effort="weeks",
        dependency_risks=[],
    )


def decision_of(*reviews: PersonaReview) -> Decision:
    return aggregate(list(reviews), DEFAULT_PERSONAS)


@pytest.mark.parametrize(
    ("parent_of_a", "parent_of_b", "relationship"),
    [
        pytest.param(None, "run-a", "run1_is_parent_of_run2", id="a-parent-of-b"),
        pytest.param("run-b", None, "run2_is_parent_of_run1", id="b-parent-of-a"),
        pytest.param("run-x", "run-x", "unrelated", id="siblings-are-not-parent-child"),
        pytest.param(None, None, "unrelated", id="unrelated"),
    ],
)
def test_metadata_relationship(
    parent_of_a: str | None, parent_of_b: str | None, relationship: str
) -> None:
    a = RunSnapshot(run_id="run-a", created_at=WHEN, parent_run_id=parent_of_a)
    b = RunSnapshot(run_id="run-b", parent_run_id=parent_of_b)
    metadata = diff_runs(a, b)["metadata"]
    assert metadata["relationship"] == relationship
    assert metadata["is_parent_child"] is (relationship != "unrelated")
    assert metadata["run1_created_at"] == "2025-03-01T12:00:00+00:00"
    assert metadata["run2_created_at"] is None


@pytest.mark.parametrize(
    ("old", "new", "status"),
    [
        pytest.param(None, None, "both_missing", id="both-missing"),
        pytest.param(None, proposal(), "run1_missing", id="run1-missing"),
        pytest.param(proposal(), None, "run2_missing", id="run2-missing"),
    ],
)
def test_missing_proposals(
    old: ExpandedProposal | None, new: ExpandedProposal | None, status: str
) -> None:
    changes = diff_runs(RunSnapshot("a", proposal=old), RunSnapshot("b", proposal=new))[
        "proposal_changes"
    ]
    assert list(changes) == list(PROPOSAL_SECTIONS)
    assert {c["status"] for c in changes.values()} == {status}
    assert (changes["title"]["new_length"] is None) is (new is None)


def test_section_statuses_and_unified_diff() -> None:
    old = proposal()
    new = proposal(
        proposed_solution="Line one.\nLine 2.\nLine three.",
        scope_non_goals=["No payments"],
        assumptions=[],
    )
    changes = diff_runs(RunSnapshot("a", proposal=old), RunSnapshot("b", proposal=new))[
        "proposal_changes"
    ]
    statuses = {section: change["status"] for section, change in changes.items()}
    assert statuses == {
        "title": "unchanged",
        "summary": "unchanged",
        "problem_statement": "unchanged",
        "proposed_solution": "modified",
        "assumptions": "removed",
        "scope_non_goals": "added",
    }
    solution = changes["proposed_solution"]
    assert "-Line two." in solution["diff"].splitlines()
    assert "+Line 2." in solution["diff"].splitlines()
    assert solution["diff"].startswith("--- run1/proposed_solution")
    assert (solution["old_length"], solution["new_length"]) == (31, 29)
    assert changes["scope_non_goals"]["diff"].splitlines()[-1] == "+- No payments"
    assert changes["title"]["diff"] == ""


def test_long_diffs_are_capped() -> None:
    old = proposal(proposed_solution="\n".join(f"old {i}" for i in range(200)))
    new = proposal(proposed_solution="\n".join(f"new {i}" for i in range(200)))
    change = diff_runs(RunSnapshot("a", proposal=old), RunSnapshot("b", proposal=new))[
        "proposal_changes"
    ]["proposed_solution"]
    assert len(change["diff"].splitlines()) == MAX_DIFF_LINES
    assert change["diff_truncated"] is True


def test_persona_deltas() -> None:
    old_reviews = {
        "critic": review("critic", 0.0, concerns=("No rollback",), recommendations=("Add tests",)),
        "optimist": review("optimist", 0.9),
        "security_guardian": review(
            "security_guardian", 0.5, blocking="Open bucket", security_critical=True
        ),
    }
    new_reviews = {
        "critic": review("critic", 0.5, concerns=("No rollback", "No owner")),
        "security_guardian": review("security_guardian", 0.85),
        "architect": review("architect", 0.8),
    }
    deltas = diff_runs(
        RunSnapshot("a", reviews=old_reviews), RunSnapshot("b", reviews=new_reviews)
    )["persona_deltas"]
    assert [d["persona_id"] for d in deltas] == [
        "architect",
        "critic",
        "optimist",
        "security_guardian",
    ]
    by_id = {d["persona_id"]: d for d in deltas}

    critic = by_id["critic"]
    assert (critic["old_confidence"], critic["new_confidence"]) == (0.0, 0.5)
    assert critic["confidence_delta"] == 0.5
    assert critic["concerns_added"] == ["No owner"]
    assert critic["concerns_removed"] == []
    assert critic["recommendations_removed"] == ["Add tests"]
    assert critic["blocking_changed"] is False

    guardian = by_id["security_guardian"]
    assert (guardian["old_blocking"], guardian["new_blocking"]) == (True, False)
    assert guardian["blocking_changed"] is True
    assert (guardian["old_security_critical"], guardian["new_security_critical"]) == (True, False)
    assert guardian["security_changed"] is True
    assert guardian["confidence_delta"] == 0.35

    assert by_id["architect"]["status"] == "added_in_run2"
    assert by_id["architect"]["old_confidence"] is None
    assert by_id["architect"]["confidence_delta"] is None
    assert by_id["optimist"]["status"] == "removed_in_run2"
    assert by_id["optimist"]["new_confidence"] is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            decision_of(review("critic", 0.0)),
            decision_of(review("critic", 0.9)),
            {
                "old_confidence": 0.0,
                "new_confidence": 0.9,
                "confidence_delta": 0.9,
                "old_decision": "reject",
                "new_decision": "approve",
                "decision_changed": True,
            },
            id="zero-confidence-is-a-value",
        ),
        pytest.param(
            decision_of(review("critic", 0.7)),
            decision_of(review("critic", 0.65)),
            {
                "old_confidence": 0.7,
                "new_confidence": 0.65,
                "confidence_delta": -0.05,
                "old_decision": "revise",
                "new_decision": "revise",
                "decision_changed": False,
            },
            id="same-label",
        ),
        pytest.param(
            None,
            decision_of(review("critic", 0.0)),
            {
                "old_confidence": None,
                "new_confidence": 0.0,
                "confidence_delta": None,
                "old_decision": None,
                "new_decision": "reject",
                "decision_changed": False,
            },
            id="run1-undecided",
        ),
    ],
)
def test_decision_delta(
    old: Decision | None, new: Decision | None, expected: dict[str, Any]
) -> None:
    delta = diff_runs(RunSnapshot("a", decision=old), RunSnapshot("b", decision=new))
    assert delta["decision_delta"] == expected


def test_whole_diff_is_json_serialisable() -> None:
    a = RunSnapshot(
        "a",
        created_at=WHEN,
        proposal=proposal(),
        reviews={"critic": review("critic", 0.0)},
        decision=decision_of(review("critic", 0.0)),
    )
    b = RunSnapshot("b", parent_run_id="a", proposal=proposal(title="New"), reviews={})
    result = diff_runs(a, b)
    assert json.loads(json.dumps(result)) == result
