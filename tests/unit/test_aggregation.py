"""Aggregation: normalised weighted score, exact thresholds, blocking, veto, minority reports."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus_engine.domain.aggregation import (
    RULE_BLOCKING,
    RULE_PARTIAL,
    RULE_SCORE,
    RULE_SECURITY_VETO,
    AggregationError,
    aggregate,
    score_label,
)
from consensus_engine.domain.personas import DEFAULT_PERSONAS, Persona, PersonaSet
from consensus_engine.domain.schemas import (
    BlockingIssue,
    Concern,
    Decision,
    DecisionLabel,
    PersonaReview,
)

APPROVE, REVISE, REJECT = DecisionLabel.APPROVE, DecisionLabel.REVISE, DecisionLabel.REJECT


def review(
    persona_id: str,
    score: float,
    *,
    blocking: str | None = None,
    security_critical: bool = False,
    blocking_concern: str | None = None,
    recommendations: tuple[str, ...] = (),
) -> PersonaReview:
    return PersonaReview(
        persona_id=persona_id,
        persona_name=DEFAULT_PERSONAS[persona_id].name if persona_id in DEFAULT_PERSONAS else "X",
        confidence_score=score,
        summary="A review.",
        strengths=[],
        concerns=[Concern(text=blocking_concern, is_blocking=True)] if blocking_concern else [],
        recommendations=list(recommendations),
        blocking_issues=(
            [BlockingIssue(text=blocking, security_critical=security_critical)] if blocking else []
        ),
        estimated_effort="weeks",
        dependency_risks=[],
    )


def panel(scores: Mapping[str, float]) -> list[PersonaReview]:
    return [review(pid, score) for pid, score in scores.items()]


def rule_names(decision: Decision) -> list[str]:
    return [rule.split(":", 1)[0] for rule in decision.rules_applied]


ALL_HIGH = dict.fromkeys(DEFAULT_PERSONAS.ids, 0.9)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        pytest.param(1.0, APPROVE, id="max"),
        pytest.param(0.80, APPROVE, id="exactly-approve"),
        pytest.param(0.7999999, APPROVE, id="below-approve-by-less-than-precision"),
        pytest.param(0.8 - 1e-16, APPROVE, id="float-noise-below-approve"),
        pytest.param(0.799999, REVISE, id="below-approve-at-precision"),
        pytest.param(0.60, REVISE, id="exactly-revise"),
        pytest.param(0.5999999, REVISE, id="below-revise-by-less-than-precision"),
        pytest.param(0.599999, REJECT, id="below-revise-at-precision"),
        pytest.param(0.0, REJECT, id="zero"),
    ],
)
def test_score_label_thresholds(score: float, expected: DecisionLabel) -> None:
    assert score_label(score, 0.80, 0.60) is expected


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        pytest.param(0.8, APPROVE, id="everyone-at-approve"),
        pytest.param(0.6, REVISE, id="everyone-at-revise"),
        pytest.param(0.7, REVISE, id="everyone-between"),
        pytest.param(0.0, REJECT, id="everyone-zero"),
    ],
)
def test_uniform_scores_land_on_their_own_label(score: float, expected: DecisionLabel) -> None:
    decision = aggregate(panel(dict.fromkeys(DEFAULT_PERSONAS.ids, score)), DEFAULT_PERSONAS)
    assert decision.overall_weighted_confidence == pytest.approx(score)
    assert decision.decision is expected
    assert decision.minority_reports == []


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # 0.3*0.8 + 0.7*0.8 is 0.7999999999999999 in floating point
        pytest.param((0.8, 0.8), APPROVE, id="float-sum-just-under-approve"),
        # 0.3*0.25 + 0.7*0.75 is 0.5999999999999999 in floating point
        pytest.param((0.25, 0.75), REVISE, id="float-sum-just-under-revise"),
    ],
)
def test_float_noise_does_not_flip_a_tie(
    scores: tuple[float, float], expected: DecisionLabel
) -> None:
    pair = DEFAULT_PERSONAS.select(["architect", "optimist"], {"architect": 0.3, "optimist": 0.7})
    decision = aggregate(panel(dict(zip(pair.ids, scores, strict=True))), pair)
    assert decision.decision is expected
    assert decision.overall_weighted_confidence in (0.8, 0.6)


def test_weighted_score_and_breakdown() -> None:
    scores = {
        "architect": 0.9,
        "critic": 0.7,
        "optimist": 0.95,
        "security_guardian": 0.8,
        "user_advocate": 0.85,
    }
    decision = aggregate(panel(scores), DEFAULT_PERSONAS)
    # 0.225 + 0.175 + 0.1425 + 0.16 + 0.1275 = 0.83
    assert decision.overall_weighted_confidence == pytest.approx(0.83)
    assert decision.decision is APPROVE
    breakdown = decision.score_breakdown
    assert breakdown.weights == DEFAULT_PERSONAS.weights
    assert breakdown.individual_scores == scores
    assert breakdown.weighted_contributions["optimist"] == pytest.approx(0.1425)
    assert breakdown.weight_total == pytest.approx(1.0)
    assert "sum(weight_i * score_i) / sum(weight_i)" in breakdown.formula
    assert decision.rules_applied == [
        f"{RULE_SCORE}: overall weighted confidence 0.83 against approve >= 0.80 and "
        "revise >= 0.60 gives approve"
    ]
    assert decision.reviewed_personas == list(DEFAULT_PERSONAS.ids)
    assert decision.missing_personas == []


def test_missing_personas_are_normalised_out_and_reported() -> None:
    decision = aggregate(panel({"critic": 0.5, "architect": 0.9}), DEFAULT_PERSONAS)
    # (0.25*0.9 + 0.25*0.5) / 0.5 = 0.7; unnormalised it would be 0.35 (reject)
    assert decision.overall_weighted_confidence == pytest.approx(0.7)
    assert decision.decision is REVISE
    assert decision.reviewed_personas == ["architect", "critic"]
    assert decision.missing_personas == ["optimist", "security_guardian", "user_advocate"]
    assert decision.score_breakdown.weight_total == pytest.approx(0.5)
    assert RULE_PARTIAL in rule_names(decision)
    assert "Missing reviews (optimist, security_guardian, user_advocate)" in decision.rationale


def test_expected_limits_missing_personas() -> None:
    decision = aggregate(
        panel({"architect": 0.9, "critic": 0.9}),
        DEFAULT_PERSONAS,
        expected=["architect", "critic", "optimist"],
    )
    assert decision.missing_personas == ["optimist"]


def test_zero_score_is_a_real_score() -> None:
    decision = aggregate(panel({"architect": 1.0, "critic": 0.0}), DEFAULT_PERSONAS)
    assert decision.overall_weighted_confidence == pytest.approx(0.5)
    assert decision.score_breakdown.individual_scores["critic"] == 0.0
    assert decision.decision is REJECT


def test_single_persona_set() -> None:
    solo = DEFAULT_PERSONAS.select(["critic"])
    decision = aggregate([review("critic", 0.65)], solo)
    assert decision.overall_weighted_confidence == pytest.approx(0.65)
    assert decision.decision is REVISE
    assert decision.score_breakdown.weights == {"critic": 1.0}


@pytest.mark.parametrize(
    ("blocker", "expected"),
    [
        pytest.param(review("critic", 0.9, blocking="No rollback plan"), REVISE, id="issue"),
        pytest.param(review("critic", 0.9, blocking_concern="No owner"), REVISE, id="concern"),
        pytest.param(
            review("critic", 0.9, blocking="Plain-text passwords", security_critical=True),
            REVISE,
            id="security-critical-from-non-veto-persona",
        ),
        pytest.param(
            review("security_guardian", 0.9, blocking="No audit log"),
            REVISE,
            id="veto-persona-non-security-blocker",
        ),
        pytest.param(
            review("security_guardian", 0.9, blocking="Tokens in URLs", security_critical=True),
            REJECT,
            id="security-veto",
        ),
    ],
)
def test_blocking_issues_and_veto(blocker: PersonaReview, expected: DecisionLabel) -> None:
    others = [review(pid, 0.9) for pid in DEFAULT_PERSONAS.ids if pid != blocker.persona_id]
    decision = aggregate([*others, blocker], DEFAULT_PERSONAS)
    assert decision.score_decision is APPROVE
    assert decision.decision is expected
    assert RULE_BLOCKING in rule_names(decision)
    assert (RULE_SECURITY_VETO in rule_names(decision)) is (expected is REJECT)


def test_veto_is_stated_in_rules_and_rationale() -> None:
    reviews = [review(pid, 0.95) for pid in DEFAULT_PERSONAS.ids if pid != "security_guardian"]
    reviews.append(review("security_guardian", 0.9, blocking="Open S3", security_critical=True))
    decision = aggregate(reviews, DEFAULT_PERSONAS)
    veto_rule = next(r for r in decision.rules_applied if r.startswith(RULE_SECURITY_VETO))
    assert "Security Guardian (security_guardian)" in veto_rule
    assert "forces reject" in veto_rule
    assert "security veto" in decision.rationale
    dissenters = {r.persona_id: r.position for r in decision.minority_reports}
    assert dissenters == {
        pid: "approve" for pid in DEFAULT_PERSONAS.ids if pid != "security_guardian"
    }


def test_any_of_several_veto_personas_can_veto() -> None:
    personas = PersonaSet(
        [
            Persona(
                id="sec_a", name="A", weight=0.5, focus="f", instructions="i", security_veto=True
            ),
            Persona(
                id="sec_b", name="B", weight=0.5, focus="f", instructions="i", security_veto=True
            ),
        ]
    )
    reviews = [review("sec_a", 1.0), review("sec_b", 1.0, blocking="x", security_critical=True)]
    assert aggregate(reviews, personas).decision is REJECT


@pytest.mark.parametrize(
    ("score", "score_decision", "effect"),
    [
        pytest.param(0.9, APPROVE, "approve is lowered to revise", id="caps-approve"),
        pytest.param(0.4, REJECT, "no change, the decision is already reject", id="already-low"),
    ],
)
def test_all_personas_blocking(score: float, score_decision: DecisionLabel, effect: str) -> None:
    reviews = [review(pid, score, blocking=f"{pid} objects") for pid in DEFAULT_PERSONAS.ids]
    decision = aggregate(reviews, DEFAULT_PERSONAS)
    assert decision.score_decision is score_decision
    assert decision.decision is (REVISE if score_decision is APPROVE else REJECT)
    blocking_rule = next(r for r in decision.rules_applied if r.startswith(RULE_BLOCKING))
    assert effect in blocking_rule
    assert decision.minority_reports == []


def test_minority_report_on_approve() -> None:
    scores = {**ALL_HIGH, "critic": 0.5}  # 0.225+0.125+0.135+0.18+0.135 = 0.80
    reviews = [
        review(p, s, recommendations=("Add load tests",) if p == "critic" else ())
        for p, s in scores.items()
    ]
    decision = aggregate(reviews, DEFAULT_PERSONAS)
    assert decision.decision is APPROVE
    [report] = decision.minority_reports
    assert report.persona_id == "critic"
    assert report.persona_name == "Critic"
    assert report.confidence_score == 0.5
    assert report.position == "reject"
    assert report.blocking_summary == "Low confidence (0.50): Critic would reject."
    assert report.mitigation_recommendation == "Add load tests"


def test_minority_reports_on_revise_go_both_ways() -> None:
    reviews = [
        review("architect", 0.9, blocking="Single point of failure", blocking_concern="No HA"),
        review("critic", 0.5),
        review("optimist", 0.95),
        review("security_guardian", 0.7),
        review("user_advocate", 0.7),
    ]
    decision = aggregate(reviews, DEFAULT_PERSONAS)
    assert decision.decision is REVISE
    reports = {r.persona_id: r for r in decision.minority_reports}
    assert list(reports) == ["critic", "optimist"]  # architect's position is revise: agrees
    assert reports["optimist"].position == "approve"
    assert reports["optimist"].blocking_summary.startswith("High confidence (0.95)")
    assert reports["critic"].position == "reject"
    assert "Critic's concerns" in reports["critic"].mitigation_recommendation


def test_minority_report_on_reject() -> None:
    scores = {**dict.fromkeys(DEFAULT_PERSONAS.ids, 0.3), "optimist": 0.95}
    decision = aggregate(panel(scores), DEFAULT_PERSONAS)
    assert decision.decision is REJECT
    [report] = decision.minority_reports
    assert (report.persona_id, report.position) == ("optimist", "approve")
    assert "Optimist (approve)" in decision.rationale


def test_blocking_summary_joins_issues_and_blocking_concerns() -> None:
    reviews = [review(p, 0.3) for p in DEFAULT_PERSONAS.ids if p != "architect"]
    reviews.append(review("architect", 0.9, blocking="No HA", blocking_concern="No owner"))
    [report] = aggregate(reviews, DEFAULT_PERSONAS).minority_reports
    assert report.position == "revise"
    assert report.blocking_summary == "No HA; No owner"
    assert report.mitigation_recommendation == (
        "Resolve the blocking issues Architect raised before proceeding."
    )


@pytest.mark.parametrize(
    ("reviews", "kwargs", "message"),
    [
        pytest.param([], {}, "no reviews", id="no-reviews"),
        pytest.param(
            [review("ghost", 0.9)], {}, "unknown persona id 'ghost'", id="unknown-persona"
        ),
        pytest.param(
            [review("critic", 0.9), review("critic", 0.8)], {}, "two reviews", id="duplicate"
        ),
        pytest.param(
            [review("critic", 0.9)],
            {"approve_threshold": 0.6, "revise_threshold": 0.6},
            "thresholds must satisfy",
            id="equal-thresholds",
        ),
        pytest.param(
            [review("critic", 0.9)], {"expected": ["critic", "ghost"]}, "'ghost'", id="bad-expected"
        ),
    ],
)
def test_aggregation_errors(
    reviews: list[PersonaReview], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(AggregationError, match=message):
        aggregate(reviews, DEFAULT_PERSONAS, **kwargs)  # type: ignore[arg-type]


def test_custom_thresholds_are_used_and_recorded() -> None:
    decision = aggregate(
        panel(ALL_HIGH), DEFAULT_PERSONAS, approve_threshold=0.95, revise_threshold=0.5
    )
    assert decision.decision is REVISE
    assert (decision.approve_threshold, decision.revise_threshold) == (0.95, 0.5)
    assert "approve >= 0.95 and revise >= 0.50" in decision.rules_applied[0]


def test_decision_is_deterministic_and_serialisable() -> None:
    reviews = [review("critic", 0.4, blocking="x"), review("optimist", 0.9)]
    first, second = aggregate(reviews, DEFAULT_PERSONAS), aggregate(reviews, DEFAULT_PERSONAS)
    assert first == second
    assert json.loads(first.model_dump_json())["decision"] == first.decision.value


scores_strategy = st.dictionaries(
    st.sampled_from(DEFAULT_PERSONAS.ids), st.floats(0.0, 1.0), min_size=1
)


@given(scores_strategy)
def test_score_lies_between_lowest_and_highest_review(scores: dict[str, float]) -> None:
    overall = aggregate(panel(scores), DEFAULT_PERSONAS).overall_weighted_confidence
    assert min(scores.values()) - 1e-6 <= overall <= max(scores.values()) + 1e-6


@given(scores_strategy, st.data())
def test_raising_one_score_never_lowers_the_decision(
    scores: dict[str, float], data: st.DataObject
) -> None:
    rank = {REJECT: 0, REVISE: 1, APPROVE: 2}
    persona_id = data.draw(st.sampled_from(sorted(scores)))
    higher = data.draw(st.floats(scores[persona_id], 1.0))
    before = aggregate(panel(scores), DEFAULT_PERSONAS).decision
    after = aggregate(panel({**scores, persona_id: higher}), DEFAULT_PERSONAS).decision
    assert rank[after] >= rank[before]
