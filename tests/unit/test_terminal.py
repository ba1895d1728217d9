"""How ``consensus-engine runs show`` (and ``--wait``) prints a run: the council's parts,
and the short summary of the CI gate (``--fail-on``).

The shapes follow the API's ``RunDetail``; each test builds the smallest run that shows
one thing, so a failure names what the text lost.
"""

from __future__ import annotations

from typing import Any

import pytest

from consensus_engine.terminal import CHAIR_HEADING, render_accepted, render_gate, render_run

RUN_ID = "6f1c2a1e-2b8e-4f7a-9d55-0c3e1f2a4b6d"


def _review(
    persona_id: str,
    score: float,
    *,
    model: str = "gpt-4.1-mini",
    provider: str | None = "default",
    first_round: float | None = None,
) -> dict[str, Any]:
    review: dict[str, Any] = {
        "persona_id": persona_id,
        "persona_name": persona_id.title(),
        "confidence_score": score,
        "weight": 0.5,
        "blocking_issues": [],
        "concerns": [],
        "reused": False,
        "model": model,
        "first_round_review": None,
    }
    if provider is not None:
        review["provider"] = provider
    if first_round is not None:
        review["first_round_review"] = {"persona_id": persona_id, "confidence_score": first_round}
    return review


def _run(
    reviews: list[dict[str, Any]],
    *,
    rounds: int = 1,
    chair: dict[str, Any] | None = None,
    status: str = "completed",
    decided: bool = True,
) -> dict[str, Any]:
    decision = {
        "decision": "revise",
        "overall_weighted_confidence": 0.66,
        "approve_threshold": 0.8,
        "revise_threshold": 0.6,
        "score_breakdown": {"weights": {r["persona_id"]: 0.5 for r in reviews}},
        "minority_reports": [],
        "rationale": "The weighted score is between the thresholds.",
    }
    return {
        "run_id": RUN_ID,
        "status": status,
        "run_type": "initial",
        "priority": "normal",
        "idea": "A shared ride calendar.",
        "models": {"review_model": "gpt-4.1-mini", "review_rounds": rounds},
        "decision": decision if decided else None,
        "reviews": reviews,
        "steps": [],
        "chair": chair,
    }


def _chair(**fields: Any) -> dict[str, Any]:
    chair: dict[str, Any] = {
        "status": "completed",
        "model": "claude-sonnet",
        "provider": "openrouter",
        "fallback": False,
        "model_written": True,
        "report": {
            "summary": "Revise: the panel likes the idea but not its sign-up flow.",
            "agreed": ["Members want it", "A calendar export is cheap"],
            "split": [
                {"topic": "Privacy", "positions": "Critic: locations leak; Optimist: opt-in"}
            ],
            "would_change_outcome": ["A consent screen before sharing locations"],
        },
        "error": None,
    }
    return chair | fields


def _lines_after(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    return lines[start:]


def test_each_review_names_its_model_and_provider_under_its_score() -> None:
    text = render_run(
        _run(
            [
                _review("critic", 0.61, model="llama-3.1-8b", provider="local"),
                _review("architect", 0.72),
            ]
        )
    )
    lines = text.splitlines()
    critic = lines.index("  Critic                 score 0.61  weight 0.50")
    assert lines[critic + 1] == "    llama-3.1-8b via local"
    architect = lines.index("  Architect              score 0.72  weight 0.50")
    assert lines[architect + 1] == "    gpt-4.1-mini via default"
    assert "Personas:" in lines  # one round: no round count, and no score moves
    assert "first round" not in text


def test_a_review_from_an_api_without_providers_shows_its_model_alone() -> None:
    text = render_run(_run([_review("critic", 0.61, provider=None)]))
    assert "    gpt-4.1-mini\n" in text
    assert " via " not in text


def test_two_rounds_show_how_each_score_moved() -> None:
    text = render_run(
        _run(
            [
                _review("critic", 0.61, first_round=0.45),
                _review("optimist", 0.7, first_round=0.82),
                _review("architect", 0.72, first_round=0.72),
            ],
            rounds=2,
        )
    )
    assert "Personas (2 review rounds):" in text.splitlines()
    assert "    gpt-4.1-mini via default; first round 0.45 -> 0.61 (+0.16)" in text
    assert "    gpt-4.1-mini via default; first round 0.82 -> 0.70 (-0.12)" in text
    assert "    gpt-4.1-mini via default; first round 0.72 -> 0.72 (held)" in text


def test_a_completed_chair_is_set_apart_below_the_decision() -> None:
    text = render_run(_run([_review("critic", 0.61)], chair=_chair()))
    assert text.index("Decision: REVISE") < text.index(CHAIR_HEADING)
    assert _lines_after(text, CHAIR_HEADING) == [
        "Chair (model-written, does not change the decision): completed",
        "  model: claude-sonnet via openrouter",
        "  summary: Revise: the panel likes the idea but not its sign-up flow.",
        "  agreed:",
        "    - Members want it",
        "    - A calendar export is cheap",
        "  split:",
        "    - Privacy: Critic: locations leak; Optimist: opt-in",
        "  would change the outcome:",
        "    - A consent screen before sharing locations",
    ]


def test_a_chair_written_by_the_fallback_model_says_so() -> None:
    text = render_run(_run([_review("critic", 0.61)], chair=_chair(fallback=True)))
    assert "  model: claude-sonnet via openrouter (fallback)" in text.splitlines()


def test_a_failed_chair_shows_its_error_and_how_to_retry_it() -> None:
    chair = _chair(status="failed", report=None, provider=None, error="provider timed out")
    text = render_run(_run([_review("critic", 0.61)], chair=chair))
    assert _lines_after(text, CHAIR_HEADING) == [
        f"{CHAIR_HEADING}: failed",
        "  model: claude-sonnet",
        "  error: provider timed out",
        f"  try again: consensus-engine retry {RUN_ID}",
    ]
    assert "Decision: REVISE" in text  # the decision stands


def test_a_running_chair_shows_under_the_decision_already_stored() -> None:
    chair = _chair(status="running", report=None, provider=None)
    text = render_run(_run([_review("critic", 0.61)], chair=chair, status="running"))
    assert "Decision: REVISE" in text
    assert f"{CHAIR_HEADING}: running" in text
    assert "summary:" not in text and "try again" not in text


@pytest.mark.parametrize("chair", [None, _chair(status="pending", report=None)])
def test_no_chair_section_without_a_chair_or_before_a_decision(
    chair: dict[str, Any] | None,
) -> None:
    text = render_run(_run([], chair=chair, status="failed", decided=False))
    assert "Chair" not in text


def test_a_retry_says_which_steps_run_again() -> None:
    accepted = {"run_id": RUN_ID, "status": "queued", "priority": "normal", "steps": ["chair"]}
    assert render_accepted(accepted).splitlines() == [
        f"Run {RUN_ID} queued (normal priority).",
        "  re-runs: chair",
    ]


PAGE = f"http://api.test/runs/{RUN_ID}"


def _blocking(review: dict[str, Any], *issues: str, concern: str | None = None) -> dict[str, Any]:
    review["blocking_issues"] = [{"text": text} for text in issues]
    if concern is not None:
        review["concerns"] = [
            {"text": concern, "is_blocking": True},
            {"text": "not blocking", "is_blocking": False},
        ]
    return review


def test_the_gate_summary_is_four_lines_with_the_blocking_points_in_one() -> None:
    reviews = [
        _blocking(_review("critic", 0.4), "No rollback plan.", concern="Locations leak."),
        _blocking(_review("architect", 0.6), "The calendar sync " + "really " * 20 + "slow."),
        _blocking(_review("security", 0.5), "Secrets in logs.", "No rate limit."),
    ]
    assert render_gate(_run(reviews), ["reject", "revise"], PAGE).splitlines() == [
        "Decision: REVISE  score 0.660 (approve at 0.80, revise at 0.60)",
        f"Run: {RUN_ID}  {PAGE}",
        "Blocking (5): Critic: No rollback plan.; Critic: Locations leak.; "
        "Architect: The calendar sync really really really really really...; +2 more",
        "Gate: failed (revise is in --fail-on: reject, revise)",
    ]


def test_the_gate_summary_of_a_decision_not_listed_passes() -> None:
    text = render_gate(_run([_review("critic", 0.7)]), ["reject"], PAGE)
    assert text.splitlines()[2:] == [
        "Blocking: none",
        "Gate: passed (revise is not in --fail-on: reject)",
    ]


def test_the_gate_summary_of_a_run_without_a_decision_says_why() -> None:
    run = _run([], status="failed", decided=False)
    run["error"] = {"code": "LLM_UNAVAILABLE", "message": "the model did not answer"}
    assert render_gate(run, ["reject"], PAGE).splitlines() == [
        "Run failed: the model did not answer (LLM_UNAVAILABLE)",
        f"Run: {RUN_ID}  {PAGE}",
        "Gate: failed (the run ended without a decision)",
    ]


def test_a_replayed_submit_says_how_to_get_a_new_run() -> None:
    accepted = {"run_id": RUN_ID, "status": "completed", "priority": "normal"}
    assert render_accepted(accepted, replayed=True).splitlines() == [
        f"Run {RUN_ID} completed (normal priority).",
        "  an earlier submit of the same request made this run (Idempotency-Key); "
        "--no-idempotency-key submits a new one",
    ]
    assert len(render_accepted(accepted).splitlines()) == 1
