"""Structured lifecycle logs, so an operator can follow one run through the worker.

Production writes one JSON object per line, which Cloud Logging turns into
``jsonPayload`` fields (``jsonPayload.lifecycle_event``, ``jsonPayload.run_id``,
...); development writes one readable line. Logs must never hold an OpenAI key
or the user's idea: :func:`lifecycle` refuses field names that would carry such
text, and both formatters scrub key-like strings and clip long field values.

Every JSON line also names the trace it belongs to (``trace_id``, ``span_id``, when a
span is current) and the context's bound fields (an API request's ``request_id``, a
step's ``message_id``), so one line leads to the whole run. Given the Google Cloud
project, it adds the fields Cloud Logging links to Cloud Trace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal, TextIO

from opentelemetry import trace

LifecycleEvent = Literal[
    "enqueued",
    "job_started",
    "step_started",
    "step_completed",
    "step_failed",
    "job_completed",
    "job_failed",
    "idempotent_skip",
    "sweeper",
    "run_deleted",
    "webhook_attempt",
]

LIFECYCLE_LOGGER = "consensus_engine.lifecycle"

DENIED_FIELDS = frozenset(
    {
        "idea",
        "extra_context",
        "proposal",
        "edited_proposal",
        "edit_notes",
        "api_key",
        "openai_api_key",
        "authorization",
        "password",
    }
)
"""Field names that would put user text or a credential into the logs."""

MAX_FIELD_CHARS = 500
"""Longer string fields are clipped, so an error quoting a long text cannot dump it."""

_GCP_TRACE = "logging.googleapis.com/trace"
_GCP_SPAN = "logging.googleapis.com/spanId"
_GCP_SAMPLED = "logging.googleapis.com/trace_sampled"
_RESERVED_FIELDS = frozenset(
    {"lifecycle_event", "timestamp", "severity", "logger", "message", "exception"}
    | {"trace_id", "span_id", _GCP_TRACE, _GCP_SPAN, _GCP_SAMPLED}
)
_FIELD_ORDER = {
    name: rank
    for rank, name in enumerate(
        ("run_id", "step", "persona", "attempt", "duration_ms", "message_id", "error")
    )
}
_READABLE_NAMES = {"run_id": "run"}
_KEY_PATTERN = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{8,}")
_RECORD_ATTR = "lifecycle"
_OUR_HANDLER_ATTR = "_consensus_engine_handler"

_bound_fields: ContextVar[Mapping[str, object]] = ContextVar("consensus_engine_log_fields")
_lifecycle_logger = logging.getLogger(LIFECYCLE_LOGGER)


def configure_logging(
    *,
    json_lines: bool,
    level: str,
    stream: TextIO | None = None,
    trace_project: str | None = None,
) -> None:
    """Put our one handler on the root logger (stderr unless ``stream``), replacing ours only.

    Handlers installed by others (pytest's caplog, Dramatiq's CLI) stay, and
    Dramatiq's loggers keep propagating to root, so their records reach ours.
    ``trace_project``: the Google Cloud project whose Cloud Trace JSON lines link to.
    """
    levelno = logging.getLevelNamesMapping().get(level.upper())
    if levelno is None:
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OUR_HANDLER_ATTR, False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    setattr(handler, _OUR_HANDLER_ATTR, True)
    formatter = JsonLinesFormatter(trace_project=trace_project) if json_lines else None
    handler.setFormatter(formatter or ReadableFormatter())
    root.addHandler(handler)
    root.setLevel(levelno)
    logging.getLogger("dramatiq").propagate = True


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Add fields to every lifecycle record of this context (thread or task) until exit."""
    _check_names(fields)
    token = _bound_fields.set({**_bound_fields.get({}), **fields})
    try:
        yield
    finally:
        _bound_fields.reset(token)


def lifecycle(
    event: LifecycleEvent,
    *,
    run_id: object | None,
    step: str | None = None,
    persona: str | None = None,
    attempt: int | None = None,
    duration_ms: float | None = None,
    message_id: str | None = None,
    level: int = logging.INFO,
    error: str | None = None,
    **fields: object,
) -> None:
    """Log one lifecycle event; explicit fields win over bound ones, ``None`` means absent."""
    _check_names(fields)
    given = {
        "run_id": None if run_id is None else str(run_id),
        "step": step,
        "persona": persona,
        "attempt": attempt,
        "duration_ms": None if duration_ms is None else round(duration_ms, 1),
        "message_id": message_id,
        "error": error,
        **fields,
    }
    merged = {**_bound_fields.get({}), **{k: v for k, v in given.items() if v is not None}}
    present = [(k, v) for k, v in merged.items() if v is not None]
    present.sort(key=lambda item: _FIELD_ORDER.get(item[0], len(_FIELD_ORDER)))
    payload = {"lifecycle_event": event, **dict(present)}
    _lifecycle_logger.log(level, event, extra={_RECORD_ATTR: payload}, stacklevel=2)


def lifecycle_fields(record: logging.LogRecord) -> Mapping[str, object]:
    """The structured fields of a lifecycle record, empty for any other (handy with caplog)."""
    fields = getattr(record, _RECORD_ATTR, None)
    return fields if isinstance(fields, dict) else {}


class _ScrubbingFormatter(logging.Formatter):
    """Shared by both formats: the traceback text, with key-like strings scrubbed."""

    def _exception(self, record: logging.LogRecord) -> str | None:
        if record.exc_info:
            return _scrub(self.formatException(record.exc_info))
        return None if record.exc_text is None else _scrub(record.exc_text)


class JsonLinesFormatter(_ScrubbingFormatter):
    """One JSON object per record, with the keys Cloud Logging understands.

    Formats in the thread that logs (our handler is a plain stream handler), so the
    current span and bound fields are the record's own.
    """

    def __init__(self, *, trace_project: str | None = None) -> None:
        super().__init__()
        self.trace_project = trace_project

    def format(self, record: logging.LogRecord) -> str:
        fields = _safe_fields(record) or {k: _safe(v) for k, v in _bound_fields.get({}).items()}
        document: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "severity": _severity(record.levelno),
            "logger": record.name,
            "message": _scrub(record.getMessage()),
            **fields,
            **self._trace_fields(),
        }
        exception = self._exception(record)
        if exception is not None:
            document["exception"] = exception
        return json.dumps(document)

    def _trace_fields(self) -> dict[str, object]:
        span = trace.get_current_span().get_span_context()
        if not span.is_valid:
            return {}
        trace_id, span_id = format(span.trace_id, "032x"), format(span.span_id, "016x")
        fields: dict[str, object] = {"trace_id": trace_id, "span_id": span_id}
        if self.trace_project:
            fields[_GCP_TRACE] = f"projects/{self.trace_project}/traces/{trace_id}"
            fields[_GCP_SPAN] = span_id
            fields[_GCP_SAMPLED] = span.trace_flags.sampled
        return fields


class ReadableFormatter(_ScrubbingFormatter):
    """One short line per record for a developer's terminal; same scrubbing as JSON."""

    def format(self, record: logging.LogRecord) -> str:
        clock = f"{self.formatTime(record, '%H:%M:%S')}.{int(record.msecs):03d}"
        head = f"{clock} {record.levelname:<5} "
        message = _scrub(record.getMessage())
        fields = _safe_fields(record)
        if fields:
            pairs = (
                f"{_READABLE_NAMES.get(name, name)}={_readable(value)}"
                for name, value in fields.items()
                if name != "lifecycle_event"
            )
            line = head + " ".join((message, *pairs))
        else:
            line = f"{head}{record.name}: {message}"
        exception = self._exception(record)
        return line if exception is None else f"{line}\n{exception}"


def _check_names(fields: Mapping[str, object]) -> None:
    denied = sorted(name for name in fields if name.lower() in DENIED_FIELDS)
    if denied:
        raise ValueError(f"log fields {denied} could leak user text or secrets; log an id instead")
    reserved = sorted(_RESERVED_FIELDS.intersection(fields))
    if reserved:
        raise ValueError(f"log fields {reserved} are reserved by the log format")


def _severity(levelno: int) -> str:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return logging.getLevelName(threshold)
    return "DEBUG"


def _scrub(text: str) -> str:
    return _KEY_PATTERN.sub("sk-***", text)


def _safe_fields(record: logging.LogRecord) -> dict[str, object]:
    return {name: _safe(value) for name, value in lifecycle_fields(record).items()}


def _safe(value: object) -> object:
    """A JSON-ready copy of a field value: key-like text scrubbed, long strings clipped."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {_scrub(str(k)): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_safe(v) for v in value]
    text = _scrub(str(value))
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "…"


def _readable(value: object) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return json.dumps(value, ensure_ascii=False)
