"""Tracing on, into memory, for the tests of this directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from consensus_engine.observability.tracing import configure_tracing, stop_tracing
from consensus_engine.settings import load_settings


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, into memory, for one test."""
    exporter = InMemorySpanExporter()
    assert configure_tracing(load_settings(), exporter=exporter)
    try:
        yield exporter
    finally:
        stop_tracing()
