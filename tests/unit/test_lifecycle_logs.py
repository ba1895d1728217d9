"""Lifecycle logs: the JSON and readable shapes, bound context, and what must never be logged."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from opentelemetry.sdk.trace import TracerProvider

from consensus_engine.observability.logs import (
    DENIED_FIELDS,
    LIFECYCLE_LOGGER,
    MAX_FIELD_CHARS,
    LifecycleEvent,
    bound,
    configure_logging,
    lifecycle,
    lifecycle_fields,
)

RUN_ID = "5f0c2b1e-0000-4000-8000-000000000001"
FAKE_KEY = "sk-proj-" + "Ab3_x-" * 6
READABLE_TIME = r"\d\d:\d\d:\d\d\.\d{3}"

Capture = Callable[[bool], io.StringIO]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Configure logging into a fresh buffer; restore the root logger afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def configure(json_lines: bool) -> io.StringIO:
        buffer = io.StringIO()
        configure_logging(json_lines=json_lines, level="debug", stream=buffer)
        return buffer

    yield configure
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def json_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def only_json(buffer: io.StringIO) -> dict[str, object]:
    (document,) = json_lines(buffer)
    return document


@pytest.mark.parametrize("event", get_args(LifecycleEvent))
def test_json_line_of_each_event(capture: Capture, event: LifecycleEvent) -> None:
    buffer = capture(True)
    lifecycle(
        event,
        run_id=RUN_ID,
        step="review_architect",
        persona="architect",
        attempt=1,
        duration_ms=231.04,
        message_id="ab12",
    )
    document = only_json(buffer)
    assert list(document) == [
        "timestamp",
        "severity",
        "logger",
        "message",
        "lifecycle_event",
        "run_id",
        "step",
        "persona",
        "attempt",
        "duration_ms",
        "message_id",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(document["timestamp"]))
    assert document["severity"] == "INFO"
    assert document["logger"] == LIFECYCLE_LOGGER
    assert document["message"] == document["lifecycle_event"] == event
    assert document["run_id"] == RUN_ID
    assert document["attempt"] == 1
    assert document["duration_ms"] == 231.0


def test_json_omits_absent_fields_and_keeps_extras(capture: Capture) -> None:
    buffer = capture(True)
    lifecycle("sweeper", run_id=None, level=logging.WARNING, action="requeued", count=3)
    document = only_json(buffer)
    assert document["severity"] == "WARNING"
    assert {k: v for k, v in document.items() if k not in ("timestamp", "logger")} == {
        "severity": "WARNING",
        "message": "sweeper",
        "lifecycle_event": "sweeper",
        "action": "requeued",
        "count": 3,
    }


def test_json_run_id_is_a_string_and_odd_values_go_through_str(capture: Capture) -> None:
    buffer = capture(True)
    lifecycle("enqueued", run_id=42, where=Path("/tmp/x"), tags=("a", 1), ok=True)
    document = only_json(buffer)
    assert document["run_id"] == "42"
    assert document["where"] == "/tmp/x"
    assert document["tags"] == ["a", 1]
    assert document["ok"] is True


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "CRITICAL"),
        (logging.ERROR + 5, "ERROR"),
    ],
)
def test_json_severity_uses_cloud_logging_names(
    capture: Capture, level: int, severity: str
) -> None:
    buffer = capture(True)
    logging.getLogger("consensus_engine.test").log(level, "hello")
    assert only_json(buffer)["severity"] == severity


def test_json_ordinary_record_with_exception(capture: Capture) -> None:
    buffer = capture(True)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("consensus_engine.test").exception("failed %s", "here")
    document = only_json(buffer)
    assert document["message"] == "failed here"
    assert document["severity"] == "ERROR"
    assert document["logger"] == "consensus_engine.test"
    assert "lifecycle_event" not in document
    exception = str(document["exception"])
    assert exception.startswith("Traceback")
    assert "RuntimeError: boom" in exception


def test_readable_lifecycle_line(capture: Capture) -> None:
    buffer = capture(False)
    lifecycle(
        "step_completed",
        run_id="5f0c",
        step="review_architect",
        persona="architect",
        attempt=1,
        duration_ms=231,
        message_id="ab12",
        error="two words",
    )
    assert re.fullmatch(
        READABLE_TIME + r" INFO  step_completed run=5f0c step=review_architect persona=architect"
        r' attempt=1 duration_ms=231 message_id=ab12 error="two words"\n',
        buffer.getvalue(),
    )


def test_readable_ordinary_line_and_exception(capture: Capture) -> None:
    buffer = capture(False)
    log = logging.getLogger("consensus_engine.test")
    log.warning("hello %s", "there")
    try:
        raise KeyError("missing")
    except KeyError:
        log.exception("oops")
    first, second, *traceback = buffer.getvalue().splitlines()
    assert re.fullmatch(READABLE_TIME + r" WARNING consensus_engine.test: hello there", first)
    assert re.fullmatch(READABLE_TIME + r" ERROR consensus_engine.test: oops", second)
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "KeyError: 'missing'"


def test_bound_fields_merge_nest_and_restore(capture: Capture) -> None:
    buffer = capture(True)
    with bound(message_id="m1", attempt=2, step="expand"):
        with bound(worker="w1", attempt=3):
            lifecycle("job_started", run_id=RUN_ID)
        lifecycle("step_started", run_id=RUN_ID, step=None)
        lifecycle("step_failed", run_id=RUN_ID, attempt=5)
    lifecycle("job_failed", run_id=RUN_ID)
    inner, outer, explicit, after = json_lines(buffer)
    assert (inner["message_id"], inner["attempt"], inner["worker"]) == ("m1", 3, "w1")
    assert (outer["message_id"], outer["attempt"], outer["step"]) == ("m1", 2, "expand")
    assert "worker" not in outer
    assert explicit["attempt"] == 5
    assert not {"message_id", "attempt", "step", "worker"} & set(after)


def test_bound_restores_after_an_exception(capture: Capture) -> None:
    buffer = capture(True)
    with pytest.raises(RuntimeError), bound(worker="w1"):
        raise RuntimeError
    lifecycle("job_failed", run_id=RUN_ID)
    assert "worker" not in only_json(buffer)


def test_bound_fields_stay_in_their_thread(capture: Capture) -> None:
    buffer = capture(True)
    entered, main_logged = threading.Event(), threading.Event()

    def other_thread() -> None:
        with bound(worker="thread"):
            entered.set()
            assert main_logged.wait(timeout=10)
            lifecycle("job_started", run_id="from-thread")

    thread = threading.Thread(target=other_thread)
    with bound(worker="main"):
        thread.start()
        assert entered.wait(timeout=10)
        lifecycle("job_started", run_id="from-main")
        main_logged.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    by_run = {line["run_id"]: line for line in json_lines(buffer)}
    assert by_run["from-main"]["worker"] == "main"
    assert by_run["from-thread"]["worker"] == "thread"


def test_a_new_thread_does_not_see_bound_fields(capture: Capture) -> None:
    buffer = capture(True)
    with bound(worker="main"):
        thread = threading.Thread(target=lifecycle, args=("job_started",), kwargs={"run_id": 1})
        thread.start()
        thread.join(timeout=10)
    assert "worker" not in only_json(buffer)


@pytest.mark.parametrize("name", sorted(DENIED_FIELDS | {"Idea", "OPENAI_API_KEY"}))
def test_denied_field_names_raise_and_log_nothing(capture: Capture, name: str) -> None:
    buffer = capture(True)
    fields: dict[str, Any] = {name: "secret"}
    with pytest.raises(ValueError, match="leak"):
        lifecycle("enqueued", run_id=RUN_ID, **fields)
    with pytest.raises(ValueError, match="leak"), bound(**fields):
        pass
    assert buffer.getvalue() == ""


def test_the_denylist_covers_the_required_names() -> None:
    assert {
        "idea",
        "extra_context",
        "proposal",
        "edited_proposal",
        "edit_notes",
        "api_key",
        "openai_api_key",
        "authorization",
        "password",
    } <= DENIED_FIELDS


@pytest.mark.parametrize("name", ["lifecycle_event", "message", "timestamp", "severity"])
def test_reserved_field_names_raise(capture: Capture, name: str) -> None:
    capture(True)
    fields: dict[str, Any] = {name: "x"}
    with pytest.raises(ValueError, match="reserved"):
        lifecycle("enqueued", run_id=RUN_ID, **fields)


@pytest.mark.parametrize("json_format", [True, False], ids=["json", "readable"])
def test_keys_are_scrubbed_from_message_fields_and_exception(
    capture: Capture, json_format: bool
) -> None:
    buffer = capture(json_format)
    log = logging.getLogger("consensus_engine.test")
    log.info("calling with %s", FAKE_KEY)
    lifecycle("step_failed", run_id=RUN_ID, error=f"401 for key {FAKE_KEY}", hint=[FAKE_KEY])
    try:
        raise RuntimeError(f"bad key {FAKE_KEY}")
    except RuntimeError:
        log.exception("failed")
    output = buffer.getvalue()
    assert FAKE_KEY not in output
    assert "sk-proj" not in output
    assert output.count("sk-***") == 4


def test_short_sk_words_are_left_alone(capture: Capture) -> None:
    buffer = capture(True)
    lifecycle("sweeper", run_id=None, action="sk-short")
    assert only_json(buffer)["action"] == "sk-short"


def test_long_strings_in_fields_are_clipped(capture: Capture) -> None:
    buffer = capture(True)
    long_text = "x" * 2000
    lifecycle("job_failed", run_id=RUN_ID, error=long_text, quotes=[long_text])
    document = only_json(buffer)
    clipped = "x" * MAX_FIELD_CHARS + "…"
    assert document["error"] == clipped
    assert document["quotes"] == [clipped]


def test_a_string_of_exactly_the_limit_is_kept(capture: Capture) -> None:
    buffer = capture(True)
    lifecycle("job_failed", run_id=RUN_ID, error="y" * MAX_FIELD_CHARS)
    assert only_json(buffer)["error"] == "y" * MAX_FIELD_CHARS


def test_configure_twice_keeps_one_handler_of_ours_and_others(
    capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    first = capture(True)
    second = capture(False)
    assert caplog.handler in root.handlers
    assert len(root.handlers) == len(before) + 1
    logging.getLogger("consensus_engine.test").warning("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
    assert [r.getMessage() for r in caplog.records] == ["once"]


def test_configure_rejects_an_unknown_level_and_keeps_the_handler(capture: Capture) -> None:
    buffer = capture(True)
    with pytest.raises(ValueError, match="level"):
        configure_logging(json_lines=True, level="chatty")
    logging.getLogger("consensus_engine.test").info("still here")
    assert only_json(buffer)["message"] == "still here"


def test_configure_sets_the_root_level(capture: Capture) -> None:
    buffer = capture(True)
    configure_logging(json_lines=True, level="WARNING", stream=buffer)
    log = logging.getLogger("consensus_engine.test")
    log.info("hidden")
    log.warning("shown")
    assert [line["message"] for line in json_lines(buffer)] == ["shown"]


def test_dramatiq_records_reach_our_handler(capture: Capture) -> None:
    buffer = capture(True)
    logging.getLogger("dramatiq.worker.Worker").info("worker started")
    assert only_json(buffer)["logger"] == "dramatiq.worker.Worker"


def test_lifecycle_fields_of_a_caplog_record(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LIFECYCLE_LOGGER):
        lifecycle("idempotent_skip", run_id=RUN_ID, step="expand")
        logging.getLogger(LIFECYCLE_LOGGER).info("plain")
    lifecycle_record, plain = caplog.records
    assert lifecycle_fields(lifecycle_record) == {
        "lifecycle_event": "idempotent_skip",
        "run_id": RUN_ID,
        "step": "expand",
    }
    assert lifecycle_fields(plain) == {}


@pytest.fixture
def json_capture() -> Iterator[Callable[..., io.StringIO]]:
    """Like ``capture``, JSON only, with the arguments of ``configure_logging``."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def configure(**options: Any) -> io.StringIO:
        buffer = io.StringIO()
        configure_logging(json_lines=True, level="debug", stream=buffer, **options)
        return buffer

    yield configure
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_json_lines_name_the_current_trace_and_the_bound_request(
    json_capture: Callable[..., io.StringIO],
) -> None:
    """Every line, lifecycle or not; Cloud Logging's trace fields only given the project."""
    buffer = json_capture(trace_project="acme-prod")
    tracer = TracerProvider().get_tracer("test")
    with bound(request_id="req-1"), tracer.start_as_current_span("request") as span:
        logging.getLogger("consensus_engine.api").warning("slow answer")
        lifecycle("enqueued", run_id=RUN_ID)
    logging.getLogger("consensus_engine.api").warning("outside")
    plain, event, outside = (json.loads(line) for line in buffer.getvalue().splitlines())
    trace_id = format(span.get_span_context().trace_id, "032x")
    span_id = format(span.get_span_context().span_id, "016x")
    for document in (plain, event):
        assert document["request_id"] == "req-1"
        assert (document["trace_id"], document["span_id"]) == (trace_id, span_id)
        assert document["logging.googleapis.com/trace"] == f"projects/acme-prod/traces/{trace_id}"
        assert document["logging.googleapis.com/spanId"] == span_id
        assert document["logging.googleapis.com/trace_sampled"] is True
    assert not {"request_id", "trace_id", "logging.googleapis.com/trace"} & set(outside)


def test_without_a_project_json_lines_keep_the_trace_id_only(
    json_capture: Callable[..., io.StringIO],
) -> None:
    buffer = json_capture()
    with TracerProvider().get_tracer("test").start_as_current_span("step"):
        lifecycle("step_started", run_id=RUN_ID)
    document = json.loads(buffer.getvalue())
    assert len(document["trace_id"]) == 32
    assert not [key for key in document if key.startswith("logging.googleapis.com/")]


def test_trace_fields_cannot_be_overwritten_by_a_caller() -> None:
    with pytest.raises(ValueError, match="reserved"):
        lifecycle("enqueued", run_id=RUN_ID, trace_id="forged")
