"""The deterministic decision: weighted score, threshold rules, vetoes and minority reports.

No LLM is involved, so the same reviews and personas always give the same decision, and every
rule that shaped it is written into ``rules_applied`` in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from consensus_engine.domain.personas import Persona, PersonaSet
from consensus_engine.domain.schemas import (
    Decision,
    DecisionLabel,
    MinorityReport,
    PersonaReview,
    ScoreBreakdown,
)

DEFAULT_APPROVE_THRESHOLD = 0.80
DEFAULT_REVISE_THRESHOLD = 0.60
SCORE_DECIMALS = 6
"""Scores are compared at this precision, so float noise cannot flip a tie on a threshold."""

RULE_SCORE = "score_thresholds"
RULE_PARTIAL = "partial_reviews"
RULE_BLOCKING = "blocking_issues_prevent_approval"
RULE_SECURITY_VETO = "security_veto"

FORMULA = (
    "overall = sum(weight_i * score_i) / sum(weight_i) over the personas that reviewed, "
    f"rounded to {SCORE_DECIMALS} decimals; approve if overall >= approve_threshold, "
    "revise if overall >= revise_threshold, otherwise reject"
)

_RANK = {DecisionLabel.REJECT: 0, DecisionLabel.REVISE: 1, DecisionLabel.APPROVE: 2}


class AggregationError(ValueError):
    """The reviews cannot be turned into a decision (none at all, or not from this set)."""


def fmt_score(value: float) -> str:
    """Two decimals unless that would hide a difference that matters at comparison precision."""
    rounded = round(value, SCORE_DECIMALS)
    if round(rounded, 2) == rounded:
        return f"{rounded:.2f}"
    return f"{rounded:.{SCORE_DECIMALS}f}".rstrip("0")


def score_label(score: float, approve_threshold: float, revise_threshold: float) -> DecisionLabel:
    """Map a score to a label; a score exactly on a threshold takes the higher label."""
    value = round(score, SCORE_DECIMALS)
    if value >= round(approve_threshold, SCORE_DECIMALS):
        return DecisionLabel.APPROVE
    if value >= round(revise_threshold, SCORE_DECIMALS):
        return DecisionLabel.REVISE
    return DecisionLabel.REJECT


def persona_position(
    review: PersonaReview, persona: Persona, approve_threshold: float, revise_threshold: float
) -> DecisionLabel:
    """What this persona alone would decide, under the same rules as the panel."""
    position = score_label(review.confidence_score, approve_threshold, revise_threshold)
    if persona.security_veto and review.has_security_critical_issue:
        return DecisionLabel.REJECT
    if review.has_blocking_issues and position is DecisionLabel.APPROVE:
        return DecisionLabel.REVISE
    return position


def _minority_report(
    review: PersonaReview, persona: Persona, position: DecisionLabel, decision: DecisionLabel
) -> MinorityReport:
    score = fmt_score(review.confidence_score)
    more_favourable = _RANK[position] > _RANK[decision]
    blocking = review.blocking_texts
    if blocking:
        summary = "; ".join(blocking)
    elif more_favourable:
        summary = f"High confidence ({score}): {persona.name} would {position.value}."
    else:
        summary = f"Low confidence ({score}): {persona.name} would {position.value}."
    if review.recommendations:
        mitigation = "; ".join(review.recommendations)
    elif blocking:
        mitigation = f"Resolve the blocking issues {persona.name} raised before proceeding."
    elif more_favourable:
        mitigation = f"Weigh the strengths {persona.name} sees before acting on the decision."
    else:
        mitigation = f"Address {persona.name}'s concerns about {persona.focus} before proceeding."
    return MinorityReport(
        persona_id=persona.id,
        persona_name=persona.name,
        confidence_score=review.confidence_score,
        position=position.value,
        blocking_summary=summary,
        mitigation_recommendation=mitigation,
    )


def _index_reviews(
    reviews: Sequence[PersonaReview], personas: PersonaSet
) -> dict[str, PersonaReview]:
    if not reviews:
        raise AggregationError("cannot aggregate: there are no reviews")
    by_id: dict[str, PersonaReview] = {}
    for review in reviews:
        if review.persona_id not in personas:
            raise AggregationError(
                f"review from unknown persona id {review.persona_id!r}; "
                f"known: {', '.join(personas.ids)}"
            )
        if review.persona_id in by_id:
            raise AggregationError(f"two reviews from persona {review.persona_id!r}")
        by_id[review.persona_id] = review
    return by_id


def _names(personas: Sequence[Persona]) -> str:
    return ", ".join(f"{p.name} ({p.id})" for p in personas)


def aggregate(
    reviews: Sequence[PersonaReview],
    personas: PersonaSet,
    *,
    approve_threshold: float = DEFAULT_APPROVE_THRESHOLD,
    revise_threshold: float = DEFAULT_REVISE_THRESHOLD,
    expected: Sequence[str] | None = None,
) -> Decision:
    """Combine reviews into a decision.

    The score is normalised over the personas that actually reviewed, so a missing review
    neither counts as a zero nor goes unnoticed: it is listed in ``missing_personas``.
    ``expected`` defaults to every persona in ``personas``.
    """
    if not 0.0 <= revise_threshold < approve_threshold <= 1.0:
        raise AggregationError(
            "thresholds must satisfy 0 <= revise < approve <= 1, got "
            f"revise={revise_threshold} and approve={approve_threshold}"
        )
    by_id = _index_reviews(reviews, personas)
    expected_ids = list(personas.ids if expected is None else expected)
    for persona_id in expected_ids:
        if persona_id not in personas:
            raise AggregationError(f"expected persona {persona_id!r} is not in the persona set")
    present = [p for p in personas if p.id in by_id]
    missing = [i for i in expected_ids if i not in by_id]

    weight_total = math.fsum(p.weight for p in present)
    contributions = {p.id: p.weight * by_id[p.id].confidence_score for p in present}
    raw = math.fsum(contributions.values()) / weight_total
    overall = round(min(1.0, max(0.0, raw)), SCORE_DECIMALS)
    score_decision = score_label(overall, approve_threshold, revise_threshold)

    approve_at, revise_at = fmt_score(approve_threshold), fmt_score(revise_threshold)
    rules = [
        f"{RULE_SCORE}: overall weighted confidence {fmt_score(overall)} against approve >= "
        f"{approve_at} and revise >= {revise_at} gives {score_decision.value}"
    ]
    if missing:
        rules.append(
            f"{RULE_PARTIAL}: no review from {', '.join(missing)}; the score is normalised over "
            f"the {len(present)} persona(s) that reviewed"
        )
    decision = score_decision

    blockers = [p for p in present if by_id[p.id].has_blocking_issues]
    if blockers:
        effect = (
            "approve is lowered to revise"
            if decision is DecisionLabel.APPROVE
            else f"no change, the decision is already {decision.value}"
        )
        rules.append(
            f"{RULE_BLOCKING}: {_names(blockers)} raised blocking issues; a proposal with "
            f"blocking issues cannot be approved ({effect})"
        )
        if decision is DecisionLabel.APPROVE:
            decision = DecisionLabel.REVISE

    vetoers = [p for p in present if p.security_veto and by_id[p.id].has_security_critical_issue]
    if vetoers:
        rules.append(
            f"{RULE_SECURITY_VETO}: {_names(vetoers)} raised a security-critical blocking issue; "
            "a security veto forces reject"
        )
        decision = DecisionLabel.REJECT

    reports = []
    for persona in present:
        review = by_id[persona.id]
        position = persona_position(review, persona, approve_threshold, revise_threshold)
        if position is not decision:
            reports.append(_minority_report(review, persona, position, decision))

    return Decision(
        decision=decision,
        overall_weighted_confidence=overall,
        score_decision=score_decision,
        rules_applied=rules,
        score_breakdown=ScoreBreakdown(
            weights={p.id: p.weight for p in present},
            individual_scores={p.id: by_id[p.id].confidence_score for p in present},
            weighted_contributions={k: round(v, 9) for k, v in contributions.items()},
            weight_total=round(weight_total, 9),
            formula=FORMULA,
        ),
        minority_reports=reports,
        reviewed_personas=[p.id for p in present],
        missing_personas=missing,
        approve_threshold=approve_threshold,
        revise_threshold=revise_threshold,
        rationale=_rationale(
            decision, score_decision, overall, present, missing, blockers, vetoers, reports
        ),
    )


def _rationale(
    decision: DecisionLabel,
    score_decision: DecisionLabel,
    overall: float,
    present: Sequence[Persona],
    missing: Sequence[str],
    blockers: Sequence[Persona],
    vetoers: Sequence[Persona],
    reports: Sequence[MinorityReport],
) -> str:
    """One deterministic paragraph a person can read without the rest of the record."""
    count = f"{len(present)} of {len(present) + len(missing)}" if missing else f"all {len(present)}"
    parts = [
        f"Decision: {decision.value}. The overall weighted confidence is {fmt_score(overall)}, "
        f"from {count} persona review(s), which on its own gives {score_decision.value}."
    ]
    if missing:
        parts.append(f"Missing reviews ({', '.join(missing)}) were left out of the average.")
    if vetoers:
        parts.append(
            f"{', '.join(p.name for p in vetoers)} used the security veto on a security-critical "
            "blocking issue, which forces reject."
        )
    elif blockers and score_decision is DecisionLabel.APPROVE:
        parts.append(
            f"Blocking issues from {', '.join(p.name for p in blockers)} prevent approval, so "
            "the proposal needs revision."
        )
    elif blockers:
        parts.append(f"{', '.join(p.name for p in blockers)} also raised blocking issues.")
    if reports:
        dissent = ", ".join(f"{r.persona_name} ({r.position})" for r in reports)
        parts.append(f"Dissenting: {dissent}.")
    else:
        parts.append("Every persona that reviewed agrees with this decision.")
    return " ".join(parts)
