"""One run is one trace: the API request, every publish, every stage, every LLM call and
the database work, through a real API, Pub/Sub, a real Dramatiq worker and the offline LLM.

The worker runs in this process (a Dramatiq ``Worker`` on the project's worker broker),
so the in-memory exporter sees its spans too.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest
from api.conftest import ApiFactory, make_api  # noqa: F401  (the fixture)
from dramatiq.middleware import CurrentMessage
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from consensus_engine.devtools.process import environ_without_settings
from consensus_engine.domain.runs import RunStatus, Stage
from consensus_engine.messaging import build_broker, job_queue
from consensus_engine.settings import Settings
from consensus_engine.workers.dispatch import execute
from consensus_engine.workers.runtime import runtime


@pytest.fixture
def in_process_worker() -> Iterator[Any]:
    """``start(settings)``: the stage actors on a worker broker, served by a Dramatiq worker
    in this process; stopped (and the global broker restored) after the test."""
    previous = dramatiq.get_broker()
    started: list[tuple[dramatiq.Broker, dramatiq.Worker, Settings]] = []

    def start(settings: Settings) -> dramatiq.Broker:
        broker = build_broker(settings, "worker", middleware=[CurrentMessage()])
        queue = job_queue(settings)
        for stage in Stage:
            declare = dramatiq.actor(actor_name=stage.value, queue_name=queue, broker=broker)
            declare(_stage_actor(settings, stage))
        dramatiq.set_broker(broker)  # the stages send their follow-ups through it
        worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
        worker.start()
        started.append((broker, worker, settings))
        return broker

    yield start
    for broker, worker, settings in started:
        worker.stop()
        broker.close()
        runtime(settings).engine.dispose()  # the test database is dropped after the test
    dramatiq.set_broker(previous)


def _stage_actor(settings: Settings, stage: Stage) -> Callable[[str, str | None], None]:
    def perform(run_id: str, persona_id: str | None = None) -> None:
        execute(settings, stage, run_id, persona_id)

    return perform


def test_one_submitted_run_is_one_trace(
    spans: InMemorySpanExporter,
    make_api: ApiFactory,  # noqa: F811
    in_process_worker: Any,
) -> None:
    api = make_api()
    worker_broker = in_process_worker(api.settings)

    response = api.acme.post("/v1/full-review", {"idea": "Let people book a bike repair online."})
    assert response.status == 202, response.body
    run_id = uuid.UUID(response.json()["run_id"])
    run = api.stack.wait_for(run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    worker_broker.join(job_queue(api.settings), timeout=30_000)  # the last span has ended

    finished = spans.get_finished_spans()
    (request,) = [
        s for s in finished if s.kind is SpanKind.SERVER and _route(s) == "/v1/full-review"
    ]
    trace = [s for s in finished if s.context.trace_id == request.context.trace_id]
    names = [s.name for s in trace]
    personas = len(run.reviews)
    assert personas >= 2
    processed = [s for s in trace if s.kind is SpanKind.CONSUMER]
    assert sorted(s.name for s in processed) == sorted(
        ["process expand", "process aggregate"] + ["process review"] * personas
    ), names
    assert {_attribute(s, "consensus.run_id") for s in processed} == {str(run_id)}
    reviewed = {_attribute(s, "consensus.step") for s in processed if s.name == "process review"}
    assert reviewed == {f"review_{review.persona_id}" for review in run.reviews}
    published = [s for s in trace if s.kind is SpanKind.PRODUCER]
    assert len(published) == len(processed)  # expand, each review, aggregate
    assert request.parent is None
    assert all(_under(span, request, trace) for span in trace if span is not request)
    llm = [s for s in trace if s.kind is SpanKind.CLIENT and s.name.startswith("chat ")]
    assert len(llm) == api.stack.row_counts(run_id)["llm_calls"] > 0
    assert all(_under_any(span, processed, trace) for span in llm)
    database = [s for s in trace if s.attributes and "db.statement" in s.attributes]
    assert any(not _under_any(s, processed, trace) for s in database)  # the API's
    assert all(any(_under(s, p, trace) for s in database) for p in processed)


def _attribute(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)


def _route(span: ReadableSpan) -> object:
    return _attribute(span, "http.route")


def _parent(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def _under(span: ReadableSpan, ancestor: ReadableSpan, trace: list[ReadableSpan]) -> bool:
    """Whether ``ancestor`` is on ``span``'s path to the root of ``trace``."""
    by_id = {s.context.span_id: s for s in trace}
    parent = _parent(span)
    while parent is not None:
        if parent == ancestor.context.span_id:
            return True
        parent = _parent(by_id[parent]) if parent in by_id else None
    return False


def _under_any(
    span: ReadableSpan, ancestors: list[ReadableSpan], trace: list[ReadableSpan]
) -> bool:
    return any(_under(span, a, trace) for a in ancestors)


def test_tracing_off_creates_no_exporter_and_records_nothing() -> None:
    """Without an OTLP endpoint: no provider, no exporter module loaded, spans that record
    nothing; with one, the OTLP exporter is made. Fresh processes: tracing is per process."""
    script = textwrap.dedent(
        """
        import sys
        from consensus_engine.api.app import create_app
        from consensus_engine.llm.client import LLMClient
        from consensus_engine.observability.tracing import configure_tracing, tracer
        from consensus_engine.settings import load_settings

        settings = load_settings(api_auth_disabled=True)
        on = configure_tracing(settings)
        create_app(settings)
        with tracer().start_as_current_span("work") as span:
            recording = span.is_recording()
        otlp = "opentelemetry.exporter.otlp.proto.http.trace_exporter" in sys.modules
        print(on, recording, otlp)
        """
    )

    def run(**env: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**environ_without_settings(), **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    assert run() == "False False False"
    assert run(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9") == "True True True"
