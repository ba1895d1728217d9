"""Faults through real worker processes: a flaky, misconfigured or stalled LLM, lost
publishes, partial re-runs, quorums and run deadlines.

Each test checks what an operator relies on when things go wrong: the run ends the
way the rules say, every LLM attempt is accounted for, and the logs tell the story.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from support import run_cli
from support.stack import PipelineStack, StackFactory

from consensus_engine.db.models import Run, StepProgress
from consensus_engine.db.types import utcnow
from consensus_engine.devtools.service import WorkerProcess
from consensus_engine.domain.revisions import ProposalSource
from consensus_engine.domain.runs import (
    AGGREGATE_STEP,
    EXPAND_STEP,
    Priority,
    RunStatus,
    StepStatus,
    review_step,
)
from consensus_engine.llm.records import LlmCallOutcome
from consensus_engine.messaging import job_queue

PERSONAS = {"architect", "critic", "optimist", "security_guardian", "user_advocate"}
WRONG_KEY = "sk-wrong-key-123456789"


def run_events(worker: WorkerProcess, run_id: uuid.UUID, event: str) -> list[dict[str, Any]]:
    """The worker's lifecycle records of one kind for one run."""
    return [
        record
        for record in worker.events()
        if record["lifecycle_event"] == event and record.get("run_id") == str(run_id)
    ]


def steps_of(run: Run) -> dict[str, StepProgress]:
    return {step.step_name: step for step in run.steps}


def llm_outcomes(stack: PipelineStack) -> Counter[str]:
    """The offline server's answers by outcome, over every path."""
    counts: Counter[str] = Counter()
    for by_outcome in stack.llm.stats()["requests"].values():
        counts.update(by_outcome)
    return counts


def test_runs_complete_through_thirty_percent_llm_faults(make_stack: StackFactory) -> None:
    """Rate limits, server errors and bad JSON are retried or repaired, and every attempt
    is stored, so a flaky provider costs time, not runs."""
    stack = make_stack(
        env={
            "MAX_RETRIES_PER_PERSONA": "8",
            "RETRY_INITIAL_BACKOFF_SECONDS": "0.1",
            "RETRY_MAX_BACKOFF_SECONDS": "1",  # the lowest allowed
            "LLM_REPAIR_ATTEMPTS": "3",  # a repair answered with bad JSON again is repaired
        },
        latency_ms=20,
        error_rate=0.2,  # half 429, half 500
        invalid_json_rate=0.1,  # half prose around the JSON, half cut short
        seed=7,
    )
    # The random draws make all kinds likely; these make each kind certain.
    stack.llm.push_faults("429", "500", "invalid_json")
    worker = stack.start_worker()
    run_ids = [stack.submit(f"Idea {n}: a shared calendar for repair shops") for n in range(6)]

    runs = [stack.wait_for(run_id, timeout=240) for run_id in run_ids]

    for run in runs:
        assert run.status is RunStatus.COMPLETED, (run.error_code, run.error)
        assert len(run.reviews) == 5
        assert run.decision is not None and run.decision_record is not None
    server = llm_outcomes(stack)
    stored = Counter(call.outcome for run in runs for call in run.llm_calls)
    assert server["rate_limited"] >= 1 and server["server_error"] >= 1
    assert server["invalid_json"] >= 1
    # Every attempt the server answered is a stored llm_calls row with the same outcome.
    assert stored[LlmCallOutcome.RATE_LIMITED] == server["rate_limited"]
    assert stored[LlmCallOutcome.SERVER_ERROR] == server["server_error"]
    assert stored[LlmCallOutcome.INVALID_OUTPUT] == server["invalid_json"] + server["truncated"]
    assert sum(stored.values()) == stack.llm.stats()["total"]
    retried = [
        record
        for run_id in run_ids
        for record in run_events(worker, run_id, "step_failed")
        if record["will_retry"] is True
    ]
    assert not [
        record
        for run_id in run_ids
        for record in run_events(worker, run_id, "step_failed")
        if record["will_retry"] is not True
    ]
    # Each 429/500 fails a step attempt; bad JSON is repaired within the attempt.
    assert len(retried) == server["rate_limited"] + server["server_error"]
    assert {record["error_code"] for record in retried} <= {
        "llm_rate_limited",
        "llm_server_error",
    }
    print(
        f"\nLLM faults: {server['rate_limited']} x 429, {server['server_error']} x 500, "
        f"{server['invalid_json']} invalid JSON, {server['truncated']} truncated "
        f"(of {stack.llm.stats()['total']} requests); {len(retried)} step retries; "
        f"{stored[LlmCallOutcome.REPAIRED]} repaired answers"
    )


def test_a_wrong_api_key_fails_the_run_at_once(make_stack: StackFactory) -> None:
    """A 401 is permanent: retrying with the same key would only delay the bad news."""
    stack = make_stack(api_key="right-key")
    backoff = 10.0
    worker = stack.start_worker(
        env={"OPENAI_API_KEY": WRONG_KEY, "RETRY_INITIAL_BACKOFF_SECONDS": str(backoff)}
    )

    run = stack.wait_for(stack.submit())

    assert run.status is RunStatus.FAILED
    assert run.error_code == "llm_auth"
    assert run.error is not None and "credentials" in run.error and "401" in run.error
    assert WRONG_KEY not in run.error and WRONG_KEY not in worker.logs()
    assert llm_outcomes(stack) == Counter({"unauthorized": 1})
    assert run.started_at is not None and run.completed_at is not None
    # A single retry would have waited the first backoff at least.
    assert (run.completed_at - run.started_at).total_seconds() < backoff
    steps = steps_of(run)
    assert steps[EXPAND_STEP].status is StepStatus.FAILED
    assert steps[EXPAND_STEP].attempts == 1
    assert {s.status for name, s in steps.items() if name != EXPAND_STEP} == {StepStatus.SKIPPED}
    assert [call.outcome for call in run.llm_calls] == [LlmCallOutcome.AUTH_ERROR]
    failures = run_events(worker, run.id, "step_failed")
    assert [(f["step"], f["will_retry"], f["error_code"]) for f in failures] == [
        (EXPAND_STEP, False, "llm_auth")
    ]
    assert [e["error_code"] for e in run_events(worker, run.id, "job_failed")] == ["llm_auth"]


def test_a_stalled_llm_call_ends_inside_the_step_time_limit(make_stack: StackFactory) -> None:
    """An LLM timeout longer than the step's limit is shortened so that every call of the
    step fits: a stalled call ends as a retryable timeout, never past the limit (where
    the step would be interrupted, its claim taken over, and its calls paid twice)."""
    stack = make_stack(
        env={
            "WORKER_STEP_TIMEOUT_SECONDS": "2",
            "LLM_TIMEOUT_SECONDS": "60",
            "MAX_RETRIES_PER_PERSONA": "1",
            "SWEEPER_INTERVAL_SECONDS": "3600",  # only the retry may start a second attempt
        },
        latency_ms=5000,
    )
    worker = stack.start_worker()

    run = stack.wait_for(stack.submit())

    assert run.status is RunStatus.FAILED
    assert run.error_code == "llm_timeout"
    expand = steps_of(run)[EXPAND_STEP]
    assert expand.status is StepStatus.FAILED and expand.attempts == 2
    assert [call.outcome for call in run.llm_calls] == [LlmCallOutcome.TIMEOUT] * 2
    assert all(call.latency_ms < 2000 for call in run.llm_calls), run.llm_calls
    failures = run_events(worker, run.id, "step_failed")
    assert [(f["step"], f["will_retry"], f["error_code"]) for f in failures] == [
        (EXPAND_STEP, True, "llm_timeout"),
        (EXPAND_STEP, False, "llm_timeout"),
    ]


def backdate(stack: PipelineStack, run_id: uuid.UUID, seconds: float) -> None:
    """Pretend the run was created ``seconds`` ago, so the sweeper need not be waited for."""
    with stack.sessions.begin() as session:
        run = session.get_one(Run, run_id)
        run.created_at -= timedelta(seconds=seconds)


def start_queue_workers(
    stack: PipelineStack, normal_env: dict[str, str], high_env: dict[str, str]
) -> tuple[WorkerProcess, WorkerProcess]:
    """One worker per priority queue, each with its own settings, booting side by side.

    Two differently configured workers at once instead of one after the other: besides
    halving the wait, Google's emulator jar keeps handing a subscription's messages to
    an exited worker's stream for a minute, which would stall the second one.
    """
    normal, high = (
        stack.start_worker("-Q", job_queue(stack.settings, priority), env=env, wait_ready=False)
        for priority, env in ((Priority.NORMAL, normal_env), (Priority.HIGH, high_env))
    )
    normal.wait_until_ready()
    high.wait_until_ready()
    return normal, high


def test_a_lost_publish_is_resent_by_the_sweeper(stack: PipelineStack, tmp_path: Path) -> None:
    """A run committed without its message is not lost: the CLI or the worker sends it."""
    by_cli = stack.submit(publish=False)
    backdate(stack, by_cli, 3600)

    result = run_cli("sweep", env=stack.env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "re-sent 1 message(s)" in result.stdout
    swept = stack.run(by_cli)
    assert swept.status is RunStatus.QUEUED and swept.last_enqueued_at is not None
    lost = stack.submit(priority=Priority.HIGH, publish=False)
    # The normal queue's worker never sweeps: only the CLI's message can move its run.
    # The high queue's worker sweeps every second and re-sends after 2 s.
    quiet, sweeping = start_queue_workers(
        stack, normal_env={"SWEEPER_INTERVAL_SECONDS": "3600"}, high_env={}
    )

    for run_id in (by_cli, lost):
        run = stack.wait_for(run_id)
        assert run.status is RunStatus.COMPLETED, run.error
        assert len(run.reviews) == 5 and run.last_enqueued_at is not None
    assert not [e for e in quiet.events() if e["lifecycle_event"] == "sweeper"]
    assert run_events(quiet, by_cli, "job_completed")
    sweeps = [e for e in sweeping.events() if e["lifecycle_event"] == "sweeper"]
    assert {"action": "resent", "count": 1} in [
        {"action": e["action"], "count": e["count"]} for e in sweeps
    ]
    for worker in (quiet, sweeping):  # no worker sent the CLI's run its first message
        assert not [e for e in run_events(worker, by_cli, "enqueued") if e["step"] == EXPAND_STEP]
    resent = [e for e in run_events(sweeping, lost, "enqueued") if e["step"] == EXPAND_STEP]
    assert len(resent) == 1


def test_a_revision_reruns_only_the_chosen_personas(stack: PipelineStack) -> None:
    """Reviews whose inputs did not change are reused, so a revision costs only what changed."""
    worker = stack.start_worker()
    parent = stack.wait_for(stack.submit())
    assert parent.status is RunStatus.COMPLETED, parent.error
    before = stack.llm.stats()["total"]

    forced = stack.wait_for(stack.revise(parent.id, rerun_personas=["critic"]))

    assert forced.status is RunStatus.COMPLETED, forced.error
    assert stack.llm.stats()["total"] - before == 1
    assert [call.step for call in forced.llm_calls] == [review_step("critic")]
    reviews = {review.persona_id: review for review in forced.reviews}
    assert set(reviews) == PERSONAS
    assert (reviews["critic"].reused, reviews["critic"].source_run_id) == (False, None)
    for persona in PERSONAS - {"critic"}:
        assert (reviews[persona].reused, reviews[persona].source_run_id) == (True, parent.id)
    plan = steps_of(forced)[EXPAND_STEP].step_metadata["plan"]
    assert plan["rerun"] == ["critic"]
    assert set(plan["reused"]) == PERSONAS - {"critic"}
    assert forced.proposal is not None and forced.proposal.source is ProposalSource.EDITED

    before = stack.llm.stats()["total"]
    noted = stack.wait_for(stack.revise(parent.id, edit_notes="Add an offline mode"))

    assert noted.status is RunStatus.COMPLETED, noted.error
    assert noted.proposal is not None
    assert noted.proposal.source is ProposalSource.REVISED
    assert noted.proposal.diff is not None
    plan = steps_of(noted)[EXPAND_STEP].step_metadata["plan"]
    fresh = {review.persona_id for review in noted.reviews if not review.reused}
    assert fresh == set(plan["rerun"])
    assert {r.persona_id for r in noted.reviews if r.reused} == set(plan["reused"])
    assert all(r.source_run_id == parent.id for r in noted.reviews if r.reused)
    # One call revises the proposal, then one per persona that reviews again.
    assert stack.llm.stats()["total"] - before == 1 + len(plan["rerun"])
    assert len(run_events(worker, noted.id, "job_completed")) == 1


def test_a_missing_review_is_tolerated_only_within_the_quorum(stack: PipelineStack) -> None:
    """One persona failing for good still yields a decision when the quorum allows it.

    The failing request must be a review's, deterministically. Faults are FIFO over
    requests and the offline server has no "no fault" entry, so in a fresh run the
    expand request could race a pushed fault. A revision that forces one persona to
    re-run without edit notes makes exactly one request, that persona's review.
    """
    # REVIEW_QUORUM=4 on the normal queue, the default (every persona) on the high one.
    lenient, strict = start_queue_workers(stack, normal_env={"REVIEW_QUORUM": "4"}, high_env={})
    parent = stack.wait_for(stack.submit())
    assert parent.status is RunStatus.COMPLETED, parent.error

    stack.llm.push_faults("401")  # a permanent failure for this one review
    tolerated = stack.wait_for(stack.revise(parent.id, rerun_personas=["critic"]))

    assert tolerated.status is RunStatus.COMPLETED, tolerated.error
    assert {review.persona_id for review in tolerated.reviews} == PERSONAS - {"critic"}
    critic = steps_of(tolerated)[review_step("critic")]
    assert critic.status is StepStatus.FAILED and critic.attempts == 1
    assert critic.error is not None and "401" in critic.error
    assert tolerated.decision_record is not None
    assert tolerated.decision_record.decision_json["missing_personas"] == ["critic"]
    assert steps_of(tolerated)[AGGREGATE_STEP].step_metadata["missing"] == ["critic"]
    assert run_events(lenient, tolerated.id, "job_completed")

    stack.llm.push_faults("401")
    revision = stack.revise(parent.id, rerun_personas=["critic"], priority=Priority.HIGH)
    refused = stack.wait_for(revision)

    assert refused.status is RunStatus.FAILED
    assert refused.error_code == "quorum_not_met"
    assert refused.error is not None and "4 of 5" in refused.error and "critic" in refused.error
    assert steps_of(refused)[AGGREGATE_STEP].status is StepStatus.FAILED
    assert refused.decision is None and refused.decision_record is None
    assert run_events(strict, refused.id, "job_failed")
    assert llm_outcomes(stack)["unauthorized"] == 2


def test_a_run_past_its_deadline_fails_without_calling_the_llm(stack: PipelineStack) -> None:
    """A run that waited past its time limit is failed, not started late."""
    run_id = stack.submit(job_timeout_seconds=1)
    deadline = stack.run(run_id).deadline_at
    assert deadline is not None
    while utcnow() <= deadline:  # the worker starts only once the deadline has passed
        time.sleep(0.05)
    worker = stack.start_worker()

    run = stack.wait_for(run_id)

    assert run.status is RunStatus.FAILED
    assert run.error_code == "timeout"
    assert {step.status for step in run.steps} == {StepStatus.SKIPPED}
    assert run.llm_calls == [] and stack.llm.stats()["total"] == 0
    assert not run_events(worker, run_id, "step_started")
    failed = [e for e in worker.events() if e["lifecycle_event"] == "job_failed"]
    assert str(run_id) in {e.get("run_id") for e in failed}
