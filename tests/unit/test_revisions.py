"""Revisions: applying edits, the field diff, and which personas review again and why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.revisions import (
    RevisionError,
    apply_edits,
    plan_revision,
    proposal_diff,
    select_personas_to_rerun,
)
from consensus_engine.domain.schemas import (
    PROPOSAL_SECTIONS,
    BlockingIssue,
    Concern,
    ExpandedProposal,
    PersonaReview,
)

PARENT = ExpandedProposal(
    title="Shared parking",
    summary="Neighbours rent out idle spaces.",
    problem_statement="Parking is scarce.",
    proposed_solution="A web app with listings and bookings.",
    assumptions=["Owners want extra income"],
    scope_non_goals=["No payments in v1"],
)


def review(
    persona_id: str,
    score: float = 0.9,
    *,
    concern: str | None = None,
    blocking_concern: bool = False,
    blocking: str | None = None,
    attributed_to: str | None = None,
) -> PersonaReview:
    return PersonaReview(
        persona_id=attributed_to or persona_id,
        persona_name=persona_id,
        confidence_score=score,
        summary="Fine.",
        strengths=[],
        concerns=[Concern(text=concern, is_blocking=blocking_concern)] if concern else [],
        recommendations=[],
        blocking_issues=[BlockingIssue(text=blocking, security_critical=False)] if blocking else [],
        estimated_effort="weeks",
        dependency_risks=[],
    )


def good_reviews(**overrides: PersonaReview) -> dict[str, PersonaReview]:
    return {pid: overrides.get(pid, review(pid)) for pid in DEFAULT_PERSONAS.ids}


@pytest.mark.parametrize(
    ("edits", "expected_changes"),
    [
        pytest.param({"title": "Parking share"}, {"title": "Parking share"}, id="dict-one-section"),
        pytest.param(
            {"assumptions": ["A", "B"], "summary": "New summary."},
            {"assumptions": ["A", "B"], "summary": "New summary."},
            id="dict-list-section",
        ),
        pytest.param({}, {}, id="empty-dict"),
        pytest.param(
            "  Use a mobile app instead.  ",
            {"proposed_solution": "Use a mobile app instead."},
            id="plain-text-replaces-solution",
        ),
        pytest.param(
            '{"scope_non_goals": []}', {"scope_non_goals": []}, id="json-text-is-a-partial"
        ),
        pytest.param(
            "[not json] rewrite",
            {"proposed_solution": "[not json] rewrite"},
            id="only-braces-mean-json",
        ),
    ],
)
def test_apply_edits(edits: dict[str, Any] | str, expected_changes: dict[str, Any]) -> None:
    revised = apply_edits(PARENT, edits)
    assert revised.model_dump() == {**PARENT.model_dump(), **expected_changes}


def test_apply_no_edits_returns_parent() -> None:
    assert apply_edits(PARENT, None) is PARENT


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        pytest.param(
            {"solution": "x"},
            "unknown proposal section.*'solution'; known: title, summary",
            id="unknown-section",
        ),
        pytest.param(
            '{"raw_idea": "x"}', "unknown proposal section.*'raw_idea'", id="json-unknown"
        ),
        pytest.param('{"title": ', "not valid JSON", id="broken-json"),
        pytest.param("   ", "blank", id="blank-text"),
        pytest.param({"title": "  "}, "invalid edit to title", id="empty-title"),
        pytest.param({"assumptions": "one"}, "invalid edit to assumptions", id="list-as-string"),
        pytest.param(
            {"scope_non_goals": [f"n{i}" for i in range(21)]},
            "invalid edit to scope_non_goals",
            id="too-many-items",
        ),
        pytest.param(
            {"assumptions": ["ok", ""]}, r"invalid edit to assumptions\.1", id="empty-item"
        ),
    ],
)
def test_apply_edits_errors(edits: dict[str, Any] | str, message: str) -> None:
    with pytest.raises(RevisionError, match=message):
        apply_edits(PARENT, edits)


def test_proposal_diff_lists_changed_sections_in_schema_order() -> None:
    revised = apply_edits(PARENT, {"scope_non_goals": [], "title": "Parking share"})
    diff = proposal_diff(PARENT, revised)
    assert list(diff["changed_fields"]) == ["title", "scope_non_goals"]
    assert diff["changed_fields"]["title"] == {"before": "Shared parking", "after": "Parking share"}
    assert diff["changed_fields"]["scope_non_goals"]["before"] == ["No payments in v1"]
    assert diff["num_changes"] == 2
    assert json.loads(json.dumps(diff)) == diff
    assert proposal_diff(PARENT, revised) == diff


def test_proposal_diff_of_identical_proposals_is_empty() -> None:
    assert proposal_diff(PARENT, PARENT.model_copy()) == {"changed_fields": {}, "num_changes": 0}


@pytest.mark.parametrize(
    ("parent_reviews", "changed", "rerun", "reason"),
    [
        pytest.param(good_reviews(), set(), [], None, id="nothing-to-redo"),
        pytest.param(
            good_reviews(critic=review("critic", 0.65)),
            set(),
            ["critic"],
            ("critic", "parent confidence 0.65 is below 0.70"),
            id="low-confidence",
        ),
        pytest.param(
            good_reviews(critic=review("critic", 0.70)), set(), [], None, id="exactly-threshold"
        ),
        pytest.param(
            good_reviews(critic=review("critic", 0.0)),
            set(),
            ["critic"],
            ("critic", "parent confidence 0.00 is below 0.70"),
            id="zero-confidence",
        ),
        pytest.param(
            good_reviews(optimist=review("optimist", blocking="No budget")),
            set(),
            ["optimist"],
            ("optimist", "1 blocking issue(s)"),
            id="blocking-issue",
        ),
        pytest.param(
            good_reviews(architect=review("architect", concern="No HA", blocking_concern=True)),
            set(),
            ["architect"],
            ("architect", "1 blocking issue(s)"),
            id="blocking-concern",
        ),
        pytest.param(
            good_reviews(
                security_guardian=review("security_guardian", concern="Check token expiry"),
                critic=review("critic", concern="Minor wording"),
            ),
            set(),
            ["security_guardian"],
            ("security_guardian", "holds the security veto"),
            id="veto-holder-concerns",
        ),
        pytest.param(
            good_reviews(),
            {"summary"},
            ["critic", "optimist", "user_advocate"],
            ("optimist", "changed section(s) it reviews: summary"),
            id="section-cared-about",
        ),
        pytest.param(
            {pid: r for pid, r in good_reviews().items() if pid != "user_advocate"},
            set(),
            ["user_advocate"],
            ("user_advocate", "no review in the parent run"),
            id="missing-parent-review",
        ),
        pytest.param(
            good_reviews(critic=review("critic", attributed_to="optimist")),
            set(),
            ["critic"],
            ("critic", "attributed to 'optimist'"),
            id="misattributed-review",
        ),
        pytest.param(
            good_reviews(user_advocate=review("user_advocate", 0.3)),
            set(PROPOSAL_SECTIONS),
            list(DEFAULT_PERSONAS.ids),
            ("user_advocate", "below 0.70; changed section"),
            id="several-reasons",
        ),
    ],
)
def test_select_personas_to_rerun(
    parent_reviews: dict[str, PersonaReview],
    changed: set[str],
    rerun: list[str],
    reason: tuple[str, str] | None,
) -> None:
    plan = select_personas_to_rerun(parent_reviews, DEFAULT_PERSONAS, changed)
    assert list(plan.rerun) == rerun
    assert list(plan.reused) == [p for p in DEFAULT_PERSONAS.ids if p not in rerun]
    assert list(plan.reasons) == list(DEFAULT_PERSONAS.ids)
    assert all(plan.reasons[p][0].startswith("reused:") for p in plan.reused)
    if reason is not None:
        persona_id, text = reason
        assert text in "; ".join(plan.reasons[persona_id])


def test_plan_follows_persona_set_order_not_mapping_order() -> None:
    reviews = dict(reversed(list(good_reviews().items())))
    plan = select_personas_to_rerun(reviews, DEFAULT_PERSONAS, {"title", "summary"})
    assert list(plan.rerun) == ["critic", "optimist", "user_advocate"]
    assert list(plan.reused) == ["architect", "security_guardian"]


def test_plan_uses_the_given_threshold_and_serialises() -> None:
    plan = select_personas_to_rerun(good_reviews(), DEFAULT_PERSONAS, (), low_confidence=0.95)
    assert plan.rerun == DEFAULT_PERSONAS.ids
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["reasons"]["critic"] == ["parent confidence 0.90 is below 0.95"]


def test_unknown_changed_section_is_an_error() -> None:
    with pytest.raises(RevisionError, match="unknown changed section"):
        select_personas_to_rerun(good_reviews(), DEFAULT_PERSONAS, {"solution"})


def test_a_forced_plan_adds_the_personas_without_a_parent_review_in_persona_order() -> None:
    reviews = good_reviews()
    del reviews["architect"]
    plan = plan_revision(PARENT, PARENT, reviews, DEFAULT_PERSONAS, forced=["user_advocate"])
    assert plan.rerun == ("architect", "user_advocate")
    assert plan.reused == ("critic", "optimist", "security_guardian")
    assert plan.reasons["architect"] == ("no review in the parent run",)
    assert plan.reasons["user_advocate"] == ("chosen to re-run",)


def test_an_unforced_plan_follows_the_sections_the_revision_changed() -> None:
    revised = apply_edits(PARENT, {"summary": "Neighbours share idle parking spaces."})
    plan = plan_revision(PARENT, revised, good_reviews(), DEFAULT_PERSONAS)
    changed = proposal_diff(PARENT, revised)["changed_fields"]
    assert plan == select_personas_to_rerun(good_reviews(), DEFAULT_PERSONAS, changed)
    assert plan.rerun == ("critic", "optimist", "user_advocate")
