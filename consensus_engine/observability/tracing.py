"""OpenTelemetry tracing: one run is one trace, from the API request to the last LLM call.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: then no provider, exporter or
instrumentation exists, and every span asked for is OpenTelemetry's no-op one. On,
spans go over OTLP/HTTP in batches to ``<endpoint>/v1/traces`` (a collector, or Google's
``telemetry.googleapis.com``), with ``OTEL_SERVICE_NAME`` as the service.

The provider is this module's, not OpenTelemetry's global one, which can be set only
once per process: tests install one with an in-memory exporter and take it down again.
The trace context crosses Pub/Sub in two message options, :data:`TRACE_OPTIONS`
(see :mod:`consensus_engine.observability.message_tracing`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from consensus_engine.settings import Settings

TRACE_OPTIONS = ("traceparent", "tracestate")
"""The W3C trace-context fields, as message options and Pub/Sub attributes."""

_SCOPE = "consensus_engine"
_NO_OP = trace.NoOpTracer()
_W3C = TraceContextTextMapPropagator()
_lock = threading.Lock()
_provider: TracerProvider | None = None


def configure_tracing(settings: Settings, *, exporter: SpanExporter | None = None) -> bool:
    """Start tracing in this process when the settings (or ``exporter``) ask; whether it is on.

    ``exporter`` replaces OTLP and receives each span as it ends (tests). Idempotent: the
    first call that turns tracing on wins until :func:`stop_tracing`.
    """
    global _provider
    with _lock:
        if _provider is not None:
            return True
        endpoint = settings.otel_exporter_otlp_endpoint
        if exporter is None and not endpoint:
            return False
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: settings.otel_service_name})
        )
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            assert endpoint is not None
            otlp = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
            provider.add_span_processor(BatchSpanProcessor(otlp))
        # Every engine created from now on; SQLAlchemy 2.1 is newer than the
        # instrumentation's declared range, and its event hooks are unchanged.
        SQLAlchemyInstrumentor().instrument(
            tracer_provider=provider, skip_dep_check=True, enable_commenter=False
        )
        _provider = provider
        return True


def stop_tracing() -> None:
    """Export what is pending and turn tracing off (tests; the end of a worker process)."""
    global _provider
    with _lock:
        provider, _provider = _provider, None
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().uninstrument()
    provider.shutdown()


def flush_spans(timeout_ms: int = 5000) -> None:
    """Export the spans still batched, e.g. before a worker process exits."""
    provider = _provider
    if provider is not None:
        provider.force_flush(timeout_ms)


def tracer() -> trace.Tracer:
    """Our tracer: the configured provider's, else one whose spans cost nothing."""
    provider = _provider
    return _NO_OP if provider is None else provider.get_tracer(_SCOPE)


def trace_app(app: FastAPI) -> None:
    """A server span for each request to ``app``, continuing a caller's ``traceparent``."""
    provider = _provider
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, exclude_spans=["receive", "send"]
    )


def trace_fields(within: context.Context | None = None) -> dict[str, str]:
    """The W3C fields of ``within``'s span (default: the current one); empty without one."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=within)
    return carrier


def extract(carrier: Mapping[str, object]) -> context.Context:
    """The trace context carried by ``carrier`` (an empty one when none is)."""
    fields = {name: value for name in TRACE_OPTIONS if isinstance(value := carrier.get(name), str)}
    return _W3C.extract(fields)
