"""Dramatiq middleware that carries a trace across Pub/Sub: a span per publish and per
processed message, the context travelling in the message's ``traceparent`` options.

A publish continues the current span, or, with none (a delayed message moved back to its
queue), the trace its message already carries. Processing continues the publisher's
trace, so a run's stages, each sent by the one before, make one trace. A publish that
fails has no span of its own (Dramatiq has no hook for it); the span around it records
the error.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware
from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from consensus_engine.observability.tracing import extract, flush_spans, trace_fields, tracer

_SYSTEM = "gcp_pubsub"


class MessageTracing(Middleware):
    """Put it first, so a retry that Dramatiq's ``Retries`` sends after processing is
    published while the processing span is still current."""

    def __init__(self) -> None:
        self._local = threading.local()

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int
    ) -> None:
        current = trace.get_current_span().get_span_context()
        parent = None if current.is_valid else extract(message.options)
        span = tracer().start_span(
            f"publish {message.queue_name}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes=_attributes(message, "send"),
        )
        message.options.update(trace_fields(trace.set_span_in_context(span)))
        self._local.publishing = span

    def after_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int
    ) -> None:
        span: Span | None = getattr(self._local, "publishing", None)
        self._local.publishing = None
        if span is not None:
            span.end()

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy
    ) -> None:
        parent = extract(message.options)
        span = tracer().start_span(
            f"process {message.actor_name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=_attributes(message, "process"),
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        self._local.processing = (span, token)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        processing = getattr(self._local, "processing", None)
        self._local.processing = None
        if processing is None:
            return
        span, token = processing
        if exception is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        span.end()
        context.detach(token)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self.after_process_message(broker, message)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        flush_spans()


def _attributes(
    message: dramatiq.Message[Any] | dramatiq.MessageProxy, operation: str
) -> dict[str, str]:
    return {
        "messaging.system": _SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": message.queue_name,
        "messaging.message.id": message.message_id,
        "dramatiq.actor": message.actor_name,
    }
