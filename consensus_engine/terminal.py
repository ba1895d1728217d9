"""How the command line shows runs, progress and diffs: plain text for a terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from consensus_engine.run_progress import TERMINAL_STATUSES, Progress, StatusUpdate


def _score(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _short_score(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def render_progress(update: Progress, elapsed: float) -> str:
    stamp = f"[{elapsed:6.1f}s]"
    if isinstance(update, StatusUpdate):
        suffix = f" ({update.error_code})" if update.error_code else ""
        return f"  {stamp} run {update.status}{suffix}"
    notes = []
    if update.attempts > 1:
        notes.append(f"attempt {update.attempts}")
    if update.reused:
        notes.append("reused")
    if update.error and update.status == "failed":
        notes.append(update.error)
    note = f"  ({'; '.join(notes)})" if notes else ""
    return f"  {stamp} {update.step_name:<28} {update.status}{note}"


def render_accepted(accepted: Mapping[str, Any], *, replayed: bool = False) -> str:
    """What was stored; a replayed submit says so, since nothing new runs."""
    run_id = accepted.get("run_id")
    lines = [f"Run {run_id} {accepted.get('status')} ({accepted.get('priority')} priority)."]
    if replayed:
        lines.append(
            "  an earlier submit of the same request made this run (Idempotency-Key); "
            "--no-idempotency-key submits a new one"
        )
    plan = accepted.get("plan")
    if isinstance(plan, dict):
        lines[0] = f"Revision {run_id} of {accepted.get('parent_run_id')} {accepted.get('status')}."
        rerun = ", ".join(plan.get("rerun", [])) or "none"
        reused = ", ".join(plan.get("reused", [])) or "none"
        lines.append(f"  re-runs: {rerun}")
        lines.append(f"  reuses:  {reused}")
        if not plan.get("exact", True):
            lines.append("  (the edit notes may add re-runs once the proposal is rewritten)")
    steps = accepted.get("steps")
    if isinstance(steps, list):  # a retry: what runs again
        lines.append(f"  re-runs: {', '.join(map(str, steps)) or 'none'}")
    if accepted.get("enqueued") is False:
        lines.append(f"  {accepted.get('message')}")
    return "\n".join(lines)


def render_run(detail: Mapping[str, Any]) -> str:
    """A run's outcome for people: decision, scores, blocking points, minority reports, the
    chair's synthesis (apart from the decision, which it never changes), cost."""
    lines = [
        f"Run {detail.get('run_id')}: {detail.get('status')} "
        f"({detail.get('run_type')}, {detail.get('priority')} priority)",
        f"Idea: {detail.get('idea')}",
    ]
    if detail.get("parent_run_id"):
        lines.append(f"Revision of: {detail['parent_run_id']}")
    proposal = detail.get("proposal") or {}
    title = (proposal.get("proposal") or {}).get("title")
    if title:
        lines.append(f"Proposal: {title}")
    error = detail.get("error") or {}
    if error.get("code") or error.get("message"):
        lines.append(f"Error: {error.get('message') or ''} ({error.get('code') or 'unknown'})")
    decision = detail.get("decision")
    if isinstance(decision, dict):
        rounds = (detail.get("models") or {}).get("review_rounds")
        lines.extend(_render_decision(decision, detail.get("reviews") or [], rounds))
    elif detail.get("status") not in TERMINAL_STATUSES:
        lines.append("Decision: not yet")
        lines.extend(
            f"  {step.get('step_name', '?'):<28} {step.get('status', '?')}"
            for step in detail.get("steps", [])
        )
    chair = detail.get("chair")
    if isinstance(chair, dict) and (isinstance(decision, dict) or chair.get("status") != "pending"):
        lines.extend(_render_chair(chair, str(detail.get("run_id"))))
    usage = detail.get("usage") or {}
    if usage:
        lines.append(
            f"Usage: {usage.get('input_tokens', 0):,} input + {usage.get('output_tokens', 0):,} "
            f"output tokens in {usage.get('llm_calls', 0)} LLM call(s), "
            f"about ${usage.get('cost_usd', 0):.4f}"
        )
    return "\n".join(lines)


def _render_decision(
    decision: Mapping[str, Any], reviews: Sequence[Mapping[str, Any]], rounds: object = None
) -> list[str]:
    lines = [
        f"Decision: {str(decision.get('decision', '?')).upper()}  "
        f"(weighted score {_score(decision.get('overall_weighted_confidence'))}; approve at "
        f"{_short_score(decision.get('approve_threshold'))}, revise at "
        f"{_short_score(decision.get('revise_threshold'))})"
    ]
    breakdown = decision.get("score_breakdown") or {}
    weights = breakdown.get("weights") or {}
    by_id = {review.get("persona_id"): review for review in reviews}
    if reviews:
        lines.append("Personas (2 review rounds):" if rounds == 2 else "Personas:")
    blocking: list[str] = []
    for pid, review in by_id.items():
        name = review.get("persona_name") or pid
        flags = []
        if review.get("reused"):
            flags.append("reused")
        texts = blocking_texts(review)
        if texts:
            flags.append(f"{len(texts)} blocking")
        blocking.extend(f"  - {name}: {text}" for text in texts)
        flag = f"  [{', '.join(flags)}]" if flags else ""
        lines.append(
            f"  {name:<22} score {_short_score(review.get('confidence_score'))}"
            f"  weight {_short_score(weights.get(pid, review.get('weight')))}{flag}"
        )
        origin = _review_origin(review)
        if origin:
            lines.append(f"    {origin}")
    if blocking:
        lines.append("Blocking points:")
        lines.extend(blocking)
    reports = decision.get("minority_reports") or []
    if reports:
        lines.append("Minority reports:")
        for report in reports:
            lines.append(
                f"  - {report.get('persona_name')} ({_short_score(report.get('confidence_score'))},"
                f" {report.get('position')}): {report.get('blocking_summary')}"
            )
            lines.append(f"    mitigation: {report.get('mitigation_recommendation')}")
    rationale = decision.get("rationale")
    if rationale:
        lines.append(f"Why: {rationale}")
    return lines


def blocking_texts(review: Mapping[str, Any]) -> list[str]:
    """A review's blocking issues, then its concerns marked blocking (as the API answers
    them: ``PersonaReview.blocking_texts`` for the JSON)."""
    issues = review.get("blocking_issues") or []
    concerns = review.get("concerns") or []
    return [i.get("text", "") for i in issues] + [
        c.get("text", "") for c in concerns if c.get("is_blocking")
    ]


def _review_origin(review: Mapping[str, Any]) -> str:
    """Which model (and provider) wrote a review and, after a debate round, how its score
    moved from the first round: the line under the persona's score."""
    parts = []
    model, provider = review.get("model"), review.get("provider")
    if model:
        parts.append(f"{model} via {provider}" if provider else str(model))
    first = review.get("first_round_review")
    if isinstance(first, dict):
        parts.append(f"first round {_score_move(first.get('confidence_score'), review)}")
    return "; ".join(parts)


def _score_move(before: object, review: Mapping[str, Any]) -> str:
    after = review.get("confidence_score")
    moved = f"{_short_score(before)} -> {_short_score(after)}"
    if not (isinstance(before, int | float) and isinstance(after, int | float)):
        return moved
    change = after - before
    return f"{moved} ({'held' if abs(change) < 0.005 else f'{change:+.2f}'})"


CHAIR_HEADING = "Chair (model-written, does not change the decision)"


def _render_chair(chair: Mapping[str, Any], run_id: str) -> list[str]:
    """The chair's synthesis, set apart under its own heading: a model wrote it, and the
    decision above stands whatever it says."""
    lines = [f"{CHAIR_HEADING}: {chair.get('status', '?')}"]
    if chair.get("model"):
        provider = f" via {chair['provider']}" if chair.get("provider") else ""
        fallback = " (fallback)" if chair.get("fallback") else ""
        lines.append(f"  model: {chair['model']}{provider}{fallback}")
    if chair.get("status") == "failed":
        lines.append(f"  error: {chair.get('error') or 'no reason given'}")
        lines.append(f"  try again: consensus-engine retry {run_id}")
    report = chair.get("report")
    if isinstance(report, dict):
        lines.extend(_render_chair_report(report))
    return lines


def _render_chair_report(report: Mapping[str, Any]) -> list[str]:
    lines = [f"  summary: {report.get('summary', '')}"]
    sections: list[tuple[str, list[str]]] = [
        ("agreed", [str(point) for point in report.get("agreed") or []]),
        (
            "split",
            [f"{s.get('topic', '')}: {s.get('positions', '')}" for s in report.get("split") or []],
        ),
        (
            "would change the outcome",
            [str(point) for point in report.get("would_change_outcome") or []],
        ),
    ]
    for title, items in sections:
        if items:
            lines.append(f"  {title}:")
            lines.extend(f"    - {item}" for item in items)
    return lines


GATE_POINTS_SHOWN = 3
GATE_POINT_LENGTH = 70


def _shorten(text: str, length: int) -> str:
    """One line of at most ``length`` characters, cut between words where there is one."""
    flat = " ".join(text.split())
    if len(flat) <= length:
        return flat
    cut = flat[: length - 2]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut[:-1]).rstrip(" .,;:") + "..."


def render_gate(detail: Mapping[str, Any], fail_on: Sequence[str], page: str) -> str:
    """The few lines a CI log needs: the decision and score, the run and its page, the
    blocking points in one line, and whether the gate passed; ``runs show`` has the rest."""
    run_id = detail.get("run_id")
    decision = detail.get("decision")
    listed = ", ".join(fail_on)
    if not isinstance(decision, dict):
        error = detail.get("error") or {}
        reason = error.get("message") or "no decision"
        code = f" ({error['code']})" if error.get("code") else ""
        return "\n".join(
            [
                f"Run {detail.get('status')}: {reason}{code}",
                f"Run: {run_id}  {page}",
                "Gate: failed (the run ended without a decision)",
            ]
        )
    label = str(decision.get("decision", "?"))
    points = [
        f"{review.get('persona_name') or review.get('persona_id')}: {text}"
        for review in detail.get("reviews") or []
        for text in blocking_texts(review)
    ]
    shown = "; ".join(_shorten(point, GATE_POINT_LENGTH) for point in points[:GATE_POINTS_SHOWN])
    more = f"; +{len(points) - GATE_POINTS_SHOWN} more" if len(points) > GATE_POINTS_SHOWN else ""
    verdict = "failed" if label in fail_on else "passed"
    listed_or_not = "is" if label in fail_on else "is not"
    score = _score(decision.get("overall_weighted_confidence"))
    return "\n".join(
        [
            f"Decision: {label.upper()}  score {score}"
            f" (approve at {_short_score(decision.get('approve_threshold'))}, revise at "
            f"{_short_score(decision.get('revise_threshold'))})",
            f"Run: {run_id}  {page}",
            f"Blocking ({len(points)}): {shown}{more}" if points else "Blocking: none",
            f"Gate: {verdict} ({label} {listed_or_not} in --fail-on: {listed})",
        ]
    )


def render_cancelled(answer: Mapping[str, Any]) -> str:
    return f"Run {answer.get('run_id')} {answer.get('status')}."


def render_run_list(listing: Mapping[str, Any]) -> str:
    runs = listing.get("runs") or []
    if not runs:
        return "No runs."
    header = f"{'RUN ID':<36}  {'STATUS':<9}  {'TYPE':<8}  {'DECISION':<8}  SCORE  CREATED"
    lines = [header]
    for run in runs:
        created = str(run.get("created_at") or "")[:19].replace("T", " ")
        title = run.get("proposal_title") or ""
        lines.append(
            f"{run.get('run_id')!s:<36}  {run.get('status')!s:<9}  {run.get('run_type')!s:<8}  "
            f"{run.get('decision') or '-':<8}  {_short_score(run.get('overall_score')):>5}  "
            f"{created}  {title}".rstrip()
        )
    if listing.get("next_cursor"):
        lines.append(f"More: --cursor {listing['next_cursor']}")
    return "\n".join(lines)


def render_usage(usage: Mapping[str, Any]) -> str:
    """Spend by day and model, then what is left of each budget limit."""
    lines = [f"Tenant {usage.get('tenant')}"]
    days = usage.get("days") or []
    if days:
        lines.append(f"{'DAY':<10}  {'MODEL':<24}  {'CALLS':>5}  {'TOKENS':>9}  {'USD':>9}")
        for day in days:
            tokens = int(day.get("input_tokens", 0)) + int(day.get("output_tokens", 0))
            lines.append(
                f"{day.get('day')!s:<10}  {day.get('model')!s:<24}  {day.get('calls', 0):>5}  "
                f"{tokens:>9}  {float(day.get('cost_usd', 0)):>9.4f}"
            )
    else:
        lines.append("No LLM calls in this period.")
    budget = usage.get("budget") or []
    if not budget:
        lines.append("Budget: no limits.")
    for limit in budget:
        resets = str(limit.get("resets_at") or "")[:19].replace("T", " ")
        lines.append(
            f"Budget {limit.get('limit')}: {limit.get('used')} of {limit.get('allowed')} used, "
            f"{limit.get('left')} left (resets {resets} UTC)"
        )
    return "\n".join(lines)


def render_diff(diff: Mapping[str, Any]) -> str:
    meta = diff.get("metadata") or {}
    lines = [f"{meta.get('run1_id')} -> {meta.get('run2_id')} ({meta.get('relationship')})"]
    delta = diff.get("decision_delta") or {}
    changed = "  changed" if delta.get("decision_changed") else ""
    lines.append(
        f"Decision: {delta.get('old_decision') or '-'} ({_score(delta.get('old_confidence'))}) -> "
        f"{delta.get('new_decision') or '-'} ({_score(delta.get('new_confidence'))}){changed}"
    )
    personas = diff.get("persona_deltas") or []
    if personas:
        lines.append("Personas:")
    for item in personas:
        change = item.get("confidence_delta")
        shift = f" ({change:+.2f})" if isinstance(change, int | float) else ""
        blocking = (
            f"  blocking {_yes_no(item.get('old_blocking'))} -> {_yes_no(item.get('new_blocking'))}"
            if item.get("blocking_changed")
            else ""
        )
        status = "" if item.get("status") == "present_in_both" else f"  [{item.get('status')}]"
        lines.append(
            f"  {item.get('persona_id')!s:<22} {_short_score(item.get('old_confidence'))} -> "
            f"{_short_score(item.get('new_confidence'))}{shift}{blocking}{status}"
        )
    lines.append("Proposal:")
    for section, change in (diff.get("proposal_changes") or {}).items():
        lines.append(f"  {section}: {change.get('status')}")
        text = change.get("diff") or ""
        lines.extend(f"    {line}" for line in text.splitlines())
        if change.get("diff_truncated"):
            lines.append("    (diff truncated)")
    return "\n".join(lines)


def _yes_no(value: object) -> str:
    return "-" if value is None else ("yes" if value else "no")
