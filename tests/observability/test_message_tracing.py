"""The trace context travels with each job message: in its options (the body) and as Pub/Sub
attributes, where tools that never decode the body find it."""

from __future__ import annotations

from typing import Any

import dramatiq
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from support.pubsub import PubSubBackend

from consensus_engine.messaging import build_broker, job_queue
from consensus_engine.observability.tracing import tracer
from consensus_engine.settings import load_settings


def test_a_published_job_carries_its_publish_span_as_attributes(
    spans: InMemorySpanExporter, pubsub_emulator: PubSubBackend, pubsub_namespace: str
) -> None:
    settings = load_settings(
        pubsub_emulator_host=pubsub_emulator.host,
        pubsub_project_id="trace-tests",
        pubsub_topic=f"{pubsub_namespace}-jobs",
        pubsub_subscription=f"{pubsub_namespace}-jobs-sub",
        pubsub_auto_create=True,
    )
    broker = build_broker(settings, "plain")
    queue = job_queue(settings)
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue, actor_name="expand", args=("run",), kwargs={}, options={}
    )
    try:
        with tracer().start_as_current_span("request") as request:
            sent = broker.enqueue(message)
        subscription = broker.provisioner.subscription_path(broker.queues[queue].subscription)
        pulled = broker.clients.subscriber.pull(
            request={"subscription": subscription, "max_messages": 1}, timeout=30
        )
    finally:
        broker.close()

    (publish,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert publish.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id
    sampled = publish.context
    traceparent = f"00-{sampled.trace_id:032x}-{sampled.span_id:016x}-{sampled.trace_flags:02x}"
    (received,) = pulled.received_messages
    assert received.message.attributes["traceparent"] == traceparent
    assert sent.options["traceparent"] == traceparent
    assert dramatiq.Message.decode(received.message.data).options["traceparent"] == traceparent
