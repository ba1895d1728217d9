"""The pipeline through real ``dramatiq consensus_engine.actors`` worker processes.

Claims, redelivery, signals, queues and metrics only prove themselves together:
each test drives Pub/Sub, PostgreSQL, the offline LLM and worker subprocesses
the way production does, and judges the outcome from the database, the LLM
server's counters, the worker's lifecycle logs and its HTTP endpoints.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from support.pubsub import PubSubBackend
from support.stack import PipelineStack, StackFactory

from consensus_engine.db.models import StepProgress
from consensus_engine.devtools.process import free_port
from consensus_engine.devtools.pubsub_server import EmbeddedPubSubServer
from consensus_engine.devtools.service import WorkerProcess
from consensus_engine.domain.runs import (
    AGGREGATE_STEP,
    EXPAND_STEP,
    Job,
    Priority,
    RunStatus,
    Stage,
    StepStatus,
    review_step,
)
from consensus_engine.jobs import send
from consensus_engine.llm.records import LlmCallOutcome
from consensus_engine.messaging import job_queue
from consensus_engine.pipeline.config import personas_from_settings

_T = TypeVar("_T")

IDEA = "Quokka-themed umbrella lockers that rent by the minute near tram stops (zq81x)"
"""Distinctive, so any log line quoting the idea is easy to spot."""
IDEA_MARKER = "Quokka-themed umbrella lockers"
API_KEY = "sk-test-SECRETSECRET1234"
GUIDE_ENTRY_POINT = (sys.executable, "-m", "consensus_engine.workers.pipeline_worker")
EXPECTED_ROWS = {"proposal_versions": 1, "persona_reviews": 5, "llm_calls": 6}
STEP_EVENTS = ("step_started", "step_completed")


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faithful_pubsub_host(pubsub_emulator: PubSubBackend) -> Iterator[str]:
    """A Pub/Sub server that notices a worker's stream is gone (see tests/broker/conftest.py).

    Google's emulator jar keeps handing messages to the stream of a killed or
    stopped worker until its lease runs out (60 s here), so crash and shutdown
    recovery is tested on the embedded server when the session runs on the jar.
    """
    if not pubsub_emulator.exact_google_behaviour:
        yield pubsub_emulator.host
        return
    server = EmbeddedPubSubServer().start()
    try:
        yield server.address
    finally:
        server.stop()


def eventually(check: Callable[[], _T], what: str, *, timeout: float = 60.0) -> _T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def step_statuses(stack: PipelineStack, run_id: uuid.UUID) -> dict[str, StepStatus]:
    """A cheap look at where each step of a run stands."""
    with stack.sessions() as session:
        rows = session.execute(
            sa.select(StepProgress.step_name, StepProgress.status).where(
                StepProgress.run_id == run_id
            )
        )
        return dict(rows.all())


def running_reviews(stack: PipelineStack, run_id: uuid.UUID) -> set[str]:
    return {
        name
        for name, status in step_statuses(stack, run_id).items()
        if name.startswith("review_") and status is StepStatus.RUNNING
    }


def generation_requests(stack: PipelineStack) -> Counter[str]:
    """Outcomes of every generation request the offline LLM answered, over both APIs."""
    outcomes: Counter[str] = Counter()
    for path, counts in stack.llm.stats()["requests"].items():
        if path.endswith(("/chat/completions", "/responses")):
            outcomes.update(counts)
    return outcomes


def review_steps(stack: PipelineStack) -> list[str]:
    return [review_step(persona_id) for persona_id in personas_from_settings(stack.settings).ids]


def pipeline_steps(stack: PipelineStack) -> list[str]:
    return [EXPAND_STEP, *review_steps(stack), AGGREGATE_STEP]


def has_events(worker: WorkerProcess, wanted: Iterable[tuple[str, str | None]]) -> bool:
    """Whether every ``(lifecycle_event, step)`` pair has been logged (the log trails the DB)."""
    seen = {(e["lifecycle_event"], e.get("step")) for e in worker.events()}
    return set(wanted) <= seen


def metric_samples(worker: WorkerProcess) -> list[tuple[str, dict[str, str], float]]:
    """Every sample the worker's ``/metrics`` endpoint serves, summed over its processes."""
    status, body = worker.get("/metrics", port=worker.metrics_port)
    assert status == 200, body
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    ]


def total(samples: list[tuple[str, dict[str, str], float]], name: str) -> float:
    return sum(value for sample_name, _, value in samples if sample_name == name)


def assert_clean_logs(worker: WorkerProcess, *, since: int = 0) -> None:
    """No traceback and nothing logged as an error from offset ``since`` of the log on.

    Readiness probes that fail while the worker starts (its subscriptions not yet
    created) log a warning with a traceback; those are startup noise, not failures.
    """
    for line in worker.logs()[since:].splitlines():
        if not line.startswith("{"):
            assert "Traceback" not in line, line
            continue
        record: dict[str, Any] = json.loads(line)
        if str(record.get("message", "")).startswith("Readiness check"):
            continue
        assert "exception" not in record, line
        assert record.get("severity") not in ("ERROR", "CRITICAL"), line


def assert_complete(stack: PipelineStack, run_id: uuid.UUID, timeout: float = 90) -> None:
    run = stack.wait_for(run_id, timeout=timeout)
    assert run.status is RunStatus.COMPLETED, (run.error_code, run.error)
    assert run.proposal is not None
    assert run.decision_record is not None
    assert len(run.reviews) == 5


# -- the tests -----------------------------------------------------------------------------------


def test_a_run_completes_with_parallel_reviews_and_a_full_event_trail(
    make_stack: StackFactory,
) -> None:
    # Latency long enough for the five reviews to overlap even on a busy machine.
    stack = make_stack(env={"OPENAI_API_KEY": API_KEY}, latency_ms=1000)
    worker = stack.start_worker()
    run_id = stack.submit(IDEA)
    run = stack.wait_for(run_id)

    assert run.status is RunStatus.COMPLETED, (run.error_code, run.error)
    assert run.proposal is not None
    assert run.decision_record is not None
    assert run.decision is run.decision_record.decision
    assert {r.persona_id for r in run.reviews} == set(personas_from_settings(stack.settings).ids)
    assert stack.row_counts(run_id) == EXPECTED_ROWS
    assert all(call.outcome is LlmCallOutcome.SUCCESS for call in run.llm_calls)
    reviews = [s for s in run.steps if s.step_name.startswith("review_")]
    assert len(reviews) == 5
    started = [s.started_at for s in reviews if s.started_at is not None]
    completed = [s.completed_at for s in reviews if s.completed_at is not None]
    assert len(started) == len(completed) == 5
    assert max(started) < min(completed), "the five reviews did not overlap in time"

    steps = pipeline_steps(stack)
    wanted = {
        ("job_started", EXPAND_STEP),
        ("job_completed", None),
        *((event, step) for step in steps for event in STEP_EVENTS),
        ("enqueued", "review"),
        ("enqueued", "aggregate"),
    }
    eventually(lambda: has_events(worker, wanted), "the run's lifecycle events")
    events = worker.events()
    assert {e.get("run_id") for e in events if e["lifecycle_event"] != "sweeper"} == {str(run_id)}
    step_events = [e for e in events if e["lifecycle_event"] in STEP_EVENTS]
    assert Counter((e["lifecycle_event"], e["step"]) for e in step_events) == Counter(
        (event, step) for step in steps for event in STEP_EVENTS
    )
    for event in step_events:
        assert event["attempt"] == 1, event
        assert isinstance(event.get("message_id"), str) and event["message_id"], event
        if event["lifecycle_event"] == "step_completed":
            assert isinstance(event.get("duration_ms"), int | float), event
            assert event["duration_ms"] >= 0, event
    review_messages = {e["message_id"] for e in step_events if e["step"].startswith("review_")}
    assert len(review_messages) == 5, "each review is its own message"
    enqueued = [e for e in events if e["lifecycle_event"] == "enqueued"]
    assert sorted(e.get("persona") or "" for e in enqueued if e["step"] == "review") == sorted(
        personas_from_settings(stack.settings).ids
    )

    logs = worker.logs()
    assert IDEA_MARKER not in logs
    assert "zq81x" not in logs
    assert "SECRETSECRET" not in logs
    assert_clean_logs(worker)


def test_duplicate_deliveries_change_nothing(stack: PipelineStack) -> None:
    run_id = stack.submit(publish=False)
    stack.publish(run_id)
    stack.publish(run_id)
    worker = stack.start_worker()
    assert_complete(stack, run_id)
    # The second expand is skipped at once (done) or after the first's claim (held).
    eventually(
        lambda: has_events(worker, {("idempotent_skip", EXPAND_STEP)}),
        "the duplicate expand to be skipped",
    )

    persona = personas_from_settings(stack.settings).ids[0]
    duplicate = send(
        stack.broker, stack.settings, Job(Stage.REVIEW, run_id, Priority.NORMAL, persona)
    )
    skip = eventually(
        lambda: [
            e
            for e in worker.events()
            if (e["lifecycle_event"], e.get("message_id"))
            == ("idempotent_skip", duplicate.message_id)
        ],
        "the duplicate review to be skipped",
    )
    assert skip[0]["step"] == review_step(persona)

    assert stack.row_counts(run_id) == EXPECTED_ROWS
    run = stack.run(run_id)
    assert run.decision_record is not None
    assert all(s.attempts == 1 for s in run.steps), {s.step_name: s.attempts for s in run.steps}
    assert generation_requests(stack) == Counter({"ok": 6})


def test_two_workers_share_five_runs_without_duplicates(stack: PipelineStack) -> None:
    workers = [stack.start_worker(wait_ready=False) for _ in range(2)]
    for worker in workers:
        worker.wait_until_ready()
    run_ids = [stack.submit() for _ in range(5)]
    for run_id in run_ids:
        assert_complete(stack, run_id)
    for run_id in run_ids:
        assert stack.row_counts(run_id) == EXPECTED_ROWS
    assert generation_requests(stack)["ok"] == 30


def test_a_killed_worker_s_steps_are_taken_over(
    make_stack: StackFactory, faithful_pubsub_host: str
) -> None:
    # Redelivery after the lease runs out, or the sweeper once the claims' heartbeats have
    # been silent for 3 s, brings the killed worker's reviews back.
    env = {"WORKER_CLAIM_TIMEOUT_SECONDS": "3", "PUBSUB_EMULATOR_HOST": faithful_pubsub_host}
    stack = make_stack(env=env, latency_ms=1500)
    first = stack.start_worker()
    run_id = stack.submit()
    eventually(lambda: running_reviews(stack, run_id), "a review to be running")
    rescuer = stack.start_worker(wait_ready=False)  # boots (seconds) after the kill below
    in_flight = running_reviews(stack, run_id)
    first.kill()
    assert in_flight, "the reviews ended before the kill"

    rescuer.wait_until_ready()
    assert_complete(stack, run_id, timeout=120)
    counts = stack.row_counts(run_id)
    assert counts["proposal_versions"] == 1
    assert counts["persona_reviews"] == 5
    attempts = {s.step_name: s.attempts for s in stack.run(run_id).steps}
    assert all(attempts[name] >= 2 for name in in_flight), (in_flight, attempts)
    assert attempts[EXPAND_STEP] == 1


def test_sigterm_drains_in_flight_steps(
    make_stack: StackFactory, faithful_pubsub_host: str
) -> None:
    stack = make_stack(env={"PUBSUB_EMULATOR_HOST": faithful_pubsub_host}, latency_ms=1500)
    first = stack.start_worker()
    run_id = stack.submit()
    eventually(lambda: running_reviews(stack, run_id), "a review to be running")
    in_flight = running_reviews(stack, run_id)

    stopping = len(first.logs())
    second = stack.start_worker(wait_ready=False)  # boots while the first one drains
    assert first.stop(timeout=stack.settings.worker_shutdown_timeout_seconds) == 0
    after_stop = step_statuses(stack, run_id)
    assert all(after_stop[name] is StepStatus.COMPLETED for name in in_flight), after_stop
    events = first.events()
    begun = {e["message_id"] for e in events if e["lifecycle_event"] == "step_started"}
    ended = {e["message_id"] for e in events if e["lifecycle_event"] == "step_completed"}
    assert begun == ended, "the stopped worker left a step unfinished"
    assert "Worker has been shut down." in first.logs()[stopping:]
    assert_clean_logs(first, since=stopping)

    second.wait_until_ready()
    assert_complete(stack, run_id)
    attempts = {s.step_name: s.attempts for s in stack.run(run_id).steps}
    assert all(count == 1 for count in attempts.values()), attempts
    assert generation_requests(stack) == Counter({"ok": 6})
    assert_clean_logs(second)


def test_a_high_priority_worker_takes_only_high_priority_runs(stack: PipelineStack) -> None:
    # The first LLM request is rate limited, so the high run's expand is retried with a delay:
    # Dramatiq's -Q matches queues by canonical name, so the -high delay queue is consumed too.
    stack.llm.push_faults("429")
    # Submitted first, so a worker that consumed the normal queue would start it first.
    # (Publishing also creates the normal queue's subscription, which the -Q worker's
    # /readyz checks although it never consumes that queue: PubSubBroker.check_health.)
    normal_id = stack.submit(priority=Priority.NORMAL)
    high_worker = stack.start_worker("-Q", job_queue(stack.settings, Priority.HIGH))
    high_id = stack.submit(priority=Priority.HIGH)
    assert_complete(stack, high_id)
    high_attempts = {s.step_name: s.attempts for s in stack.run(high_id).steps}
    assert high_attempts[EXPAND_STEP] == 2, high_attempts

    normal = stack.run(normal_id)
    assert normal.status is RunStatus.QUEUED
    assert {s.status for s in normal.steps} == {StepStatus.PENDING}
    assert str(normal_id) not in {e.get("run_id") for e in high_worker.events()}

    stack.start_worker()
    assert_complete(stack, normal_id)
    assert generation_requests(stack) == Counter({"ok": 12, "rate_limited": 1})


def test_a_ready_worker_already_serves_its_metrics(stack: PipelineStack) -> None:
    """Dramatiq forks the metrics server after every worker process is up; one process
    alone can already answer ``/readyz`` (a loaded CI machine showed the gap)."""
    worker = stack.start_worker(processes=2, threads=1)
    assert total(metric_samples(worker), "dramatiq_messages_total") == 0


def test_health_and_metrics_add_up_over_processes(stack: PipelineStack) -> None:
    worker = stack.start_worker(processes=2, threads=4)
    assert worker.get("/healthz")[0] == 200
    status, body = worker.get("/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"] == {"database": "ok", "broker": "ok"}

    first_id = stack.submit()
    assert_complete(stack, first_id)
    decision = stack.run(first_id).decision
    assert decision is not None
    samples = metric_samples(worker)
    finished = [
        (labels, value)
        for name, labels, value in samples
        if name == "consensus_runs_finished_total"
    ]
    assert finished == [({"status": "completed", "decision": decision.value}, 1.0)]
    llm = [(labels, v) for name, labels, v in samples if name == "consensus_llm_requests_total"]
    assert sum(v for _, v in llm) == 6
    assert {labels["step"] for labels, _ in llm} == {"expand", "review"}
    assert any(name == "consensus_step_duration_seconds_bucket" for name, _, _ in samples)
    assert total(samples, "dramatiq_messages_total") == 7

    more = [stack.submit() for _ in range(2)]
    for run_id in more:
        assert_complete(stack, run_id)
    samples = metric_samples(worker)
    # expand + 5 reviews + aggregate per run, counted in whichever process took each
    assert total(samples, "dramatiq_messages_total") == 21
    assert total(samples, "consensus_runs_finished_total") == 3
    assert total(samples, "consensus_llm_requests_total") == 18


def test_the_guide_s_entry_point_sizes_the_worker_from_settings(make_stack: StackFactory) -> None:
    stack = make_stack(latency_ms=300)
    worker = stack.start_worker(entry_point=GUIDE_ENTRY_POINT, env={"WORKER_MAX_CONCURRENCY": "4"})
    assert_complete(stack, stack.submit())
    # The entry point execs Dramatiq in place, so its own process shows the arguments.
    arguments = Path(f"/proc/{worker.popen.pid}/cmdline").read_bytes().decode().split("\0")
    assert arguments[arguments.index("--threads") + 1] == "4"
    assert arguments[arguments.index("--processes") + 1] == "1"
    # Five reviews are ready at once, but only four threads can work on them.
    assert 1 < stack.llm.stats()["max_in_flight"] <= 4


def test_mock_mode_needs_no_pub_sub(stack: PipelineStack) -> None:
    closed = f"127.0.0.1:{free_port()}"
    worker = stack.start_worker(
        entry_point=GUIDE_ENTRY_POINT,
        env={"PUBSUB_USE_MOCK": "true", "PUBSUB_EMULATOR_HOST": closed},
    )
    assert worker.get("/healthz")[0] == 200
    assert worker.get("/readyz")[0] == 200
    assert worker.stop(timeout=30) == 0
    assert_clean_logs(worker)
