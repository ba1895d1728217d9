"""Twenty runs through two worker processes of 16 threads against an LLM server that refuses
past 120 requests a minute, with the model catalogue giving the model the same limit.

Every worker thread takes from the model's bucket in PostgreSQL before each request, so
the two processes together stay under the limit: the server sends no 429, every run
completes, and the server sees the limit's rate (within 10 %), not a trickle. Steps put
back to wait for capacity spend none of their retries: with two retries a step, a wait
that spent one would soon fail a run.
"""

from __future__ import annotations

import json
import time

from support.stack import StackFactory

from consensus_engine.domain.runs import RunStatus, StepStatus
from consensus_engine.llm.records import LlmCallOutcome

RUNS = 20
LIMIT = 120  # requests a minute, for the catalogue and the server alike
MODEL = "offline-chat"


def test_workers_share_the_rate_limit_and_keep_to_it(make_stack: StackFactory) -> None:
    stack = make_stack(
        env={
            "EXPAND_MODEL": MODEL,
            "REVIEW_MODEL": MODEL,
            "MODEL_CATALOGUE_JSON": json.dumps({MODEL: {"free": True, "rpm": LIMIT}}),
            "MAX_RETRIES_PER_PERSONA": "2",
        },
        rpm_limit=LIMIT,
    )
    started = time.monotonic()
    worker = stack.start_worker(processes=2, threads=16)
    run_ids = [stack.submit(f"Idea {n}: a shared tool library for a street.") for n in range(RUNS)]

    ended = stack.wait_for_runs(run_ids, timeout=240, poll_s=0.5, workers=[worker])
    assert ended == RUNS, worker.logs()[-6000:]

    runs = stack.runs(run_ids)
    assert {run.status for run in runs} == {RunStatus.COMPLETED}, [
        (run.status, run.error_code, run.error) for run in runs
    ]
    assert all(step.status is StepStatus.COMPLETED for run in runs for step in run.steps)
    calls = [call for run in runs for call in run.llm_calls]
    assert {call.outcome for call in calls} == {LlmCallOutcome.SUCCESS}

    stats = stack.llm.stats()
    rate = stats["rate"]
    outcomes = {outcome for counts in stats["requests"].values() for outcome in counts}
    assert rate["refused"] == 0 and outcomes == {"ok"}, stats["requests"]
    assert rate["accepted"] == len(calls)
    assert rate["busiest_minute"] <= LIMIT
    per_minute = (rate["accepted"] - 1) / rate["span_seconds"] * 60
    assert abs(per_minute - LIMIT) <= 0.1 * LIMIT, rate
    print(
        f"\nrate limits: {RUNS} runs, {rate['accepted']} LLM requests in "
        f"{rate['span_seconds']:.1f} s = {per_minute:.1f}/min against a limit of {LIMIT}/min "
        f"(busiest minute {rate['busiest_minute']}, no 429); "
        f"{time.monotonic() - started:.0f} s with worker start-up"
    )
