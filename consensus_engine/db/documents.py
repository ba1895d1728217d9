"""A run's API answers rendered by PostgreSQL itself, one statement each.

Why: building ``GET /v1/runs/{id}`` in Python (ORM objects, then pydantic models, then
JSON) costs far more CPU than the query; here the database aggregates the run, its steps,
proposal, reviews, decision and usage into the JSON text the API sends as it is. The
documents hold the same fields and values as ``api/presenters.py`` renders (a test keeps
the two equal): timestamps as pydantic writes them (UTC, ``Z``, microseconds only when
there are some), floats with a fraction, personas without their instructions. PostgreSQL
only; other databases (the demo's SQLite) go through the presenters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by
from sqlalchemy.orm import Session

from consensus_engine.db import prepared
from consensus_engine.db.models import (
    ChairReport,
    DecisionRecord,
    LlmCall,
    ProposalVersion,
    Run,
    StepProgress,
)
from consensus_engine.db.models import PersonaReview as ReviewRow
from consensus_engine.domain.runs import CHAIR_STEP, EXPAND_STEP, RunStatus, RunType, Stage
from consensus_engine.domain.schemas import Decision, ExpandedProposal, PersonaReview

Json = sa.ColumnElement[Any]
_PERSONA_STEP = "^(?:" + "|".join(s.value for s in Stage if s.per_persona) + ")_(.+)$"
"""A per-persona step's name; its group is the persona (``domain.runs.parse_step``)."""
IDEA_PREVIEW_CHARS = 120


def supported(session: Session) -> bool:
    """Whether the session's database renders the documents (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


def _obj(*pairs: tuple[str, Any]) -> Json:
    """``json_build_object``, keys inlined so a cached statement has no key parameters."""
    args: list[Any] = []
    for key, value in pairs:
        args += [sa.literal_column(f"'{key}'"), value]
    return sa.func.json_build_object(*args)


def _list(element: Json, *order_by: Any) -> Json:
    """``json_agg`` of ``element`` in order; ``[]`` when there is none."""
    return sa.func.coalesce(
        sa.func.json_agg(aggregate_order_by(element, *order_by)),
        sa.literal_column("'[]'::json"),
    )


def moment(column: Any) -> Json:
    """A timestamp as pydantic writes an aware UTC datetime: ``…T…Z``, ``.ffffff`` if any."""
    utc = sa.func.timezone("UTC", column)
    return sa.case(
        (
            sa.func.date_trunc("second", column) == column,
            sa.func.to_char(utc, sa.literal_column('\'YYYY-MM-DD"T"HH24:MI:SS"Z"\'')),
        ),
        else_=sa.func.to_char(utc, sa.literal_column('\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'')),
    )


def number(column: Any) -> Json:
    """A double (or a cast numeric) as a JSON float: ``1.0``, not PostgreSQL's ``1``."""
    value = sa.cast(column, sa.Double)
    text = sa.cast(sa.func.to_json(value), sa.Text)
    whole = sa.and_(value == sa.func.trunc(value), sa.func.abs(value) < 1e15)
    return sa.cast(sa.case((whole, text + ".0"), else_=text), sa.JSON)


def _fields(document: Any, names: Iterable[str]) -> Json:
    """The stored document's ``names`` only, as the model that reads it keeps them."""
    return _obj(*((name, document[name]) for name in names))


def _links(run_id: Any) -> Json:
    path: Json = sa.literal_column("'/v1/runs/'") + sa.cast(run_id, sa.Text)
    return _obj(("self", path), ("events", path + "/events"))


def _persona_elements() -> Any:
    """The run's personas as rows (``value``, ``ordinality``)."""
    value = sa.column("value", JSONB)
    return sa.func.jsonb_array_elements(Run.personas).table_valued(
        value, with_ordinality="ordinality"
    )


def _personas() -> Json:
    """Each persona's public fields, in the run's order (never its instructions)."""
    persona = _persona_elements()
    element = _fields(persona.c.value, ("id", "name", "weight", "focus", "model"))
    return sa.select(_list(element, persona.c.ordinality)).select_from(persona).scalar_subquery()


def _proposal() -> Json:
    p = ProposalVersion
    document = _obj(
        ("source", p.source),
        ("proposal", _fields(p.proposal, ExpandedProposal.model_fields)),
        ("diff", p.diff),
        ("edit_notes", p.edit_notes),
        ("created_at", moment(p.created_at)),
    )
    return sa.select(document).where(p.run_id == Run.id).scalar_subquery()


def _reviews() -> Json:
    """In persona-set order (the last place a persona id holds), then by id."""
    r = ReviewRow
    persona = _persona_elements()
    place = (
        sa.select(sa.func.max(persona.c.ordinality))
        .select_from(persona)
        .where(persona.c.value["id"].as_string() == r.persona_id)
        .scalar_subquery()
    )
    unlisted = sa.func.jsonb_array_length(Run.personas) + 1
    element = _obj(
        *((name, r.review[name]) for name in PersonaReview.model_fields),
        ("weight", number(r.weight)),
        ("blocking_issues_present", r.blocking_issues_present),
        ("security_concerns_present", r.security_concerns_present),
        ("reused", r.reused),
        ("source_run_id", r.source_run_id),
        ("model", r.model),
        ("provider", r.provider),
        ("temperature", number(r.temperature)),
        ("prompt_set_version", r.prompt_set_version),
        ("first_round_review", r.first_round_review),
        ("created_at", moment(r.created_at)),
    )
    order = sa.func.coalesce(place, unlisted)
    return sa.select(_list(element, order, r.id)).where(r.run_id == Run.id).scalar_subquery()


def _decision() -> Json:
    d = DecisionRecord.decision_json
    version = Decision.model_fields["schema_version"].default
    default: Json = sa.literal_column(f"'\"{version}\"'::jsonb")
    pairs = [(name, d[name]) for name in Decision.model_fields]
    pairs[0] = ("schema_version", sa.func.coalesce(d["schema_version"], default))
    return sa.select(_obj(*pairs)).where(DecisionRecord.run_id == Run.id).scalar_subquery()


def _steps() -> Json:
    s = StepProgress
    persona = sa.func.substring(s.step_name, sa.literal_column(f"'{_PERSONA_STEP}'"))
    # The worker marks a reused review with ``true``; anything else reads as not reused.
    reused = sa.func.coalesce(
        s.step_metadata["reused"] == sa.literal_column("'true'::jsonb"), False
    )
    element = _obj(
        ("step_name", s.step_name),
        ("step_order", s.step_order),
        ("persona_id", persona),
        ("status", s.status),
        ("attempts", s.attempts),
        ("reused", reused),
        ("started_at", moment(s.started_at)),
        ("completed_at", moment(s.completed_at)),
        ("updated_at", moment(s.updated_at)),
        ("error", s.error),
        ("metadata", s.step_metadata),
    )
    return sa.select(_list(element, s.step_order)).where(s.run_id == Run.id).scalar_subquery()


def _usage() -> Json:
    """Tokens and cost as the run sums them, and the LLM calls by step (failed ones too)."""
    c = LlmCall
    by_step = (
        sa.select(
            c.step,
            sa.func.count().label("calls"),
            sa.func.coalesce(sa.func.sum(c.input_tokens), 0).label("input_tokens"),
            sa.func.coalesce(sa.func.sum(c.output_tokens), 0).label("output_tokens"),
            sa.func.coalesce(sa.func.sum(c.cost_usd), 0).label("cost_usd"),
        )
        .where(c.run_id == Run.id)
        .group_by(c.step)
        .correlate(Run)
        .lateral()
    )
    step = _obj(
        ("step", by_step.c.step),
        ("llm_calls", by_step.c.calls),
        ("input_tokens", by_step.c.input_tokens),
        ("output_tokens", by_step.c.output_tokens),
        ("cost_usd", number(by_step.c.cost_usd)),
    )
    usage = _obj(
        ("input_tokens", Run.input_tokens),
        ("output_tokens", Run.output_tokens),
        ("total_tokens", Run.input_tokens + Run.output_tokens),
        ("cost_usd", number(Run.cost_usd)),
        ("llm_calls", sa.func.coalesce(sa.func.sum(by_step.c.calls), 0)),
        ("by_step", _list(step, by_step.c.step)),
    )
    return sa.select(usage).select_from(by_step).scalar_subquery()


def _chair() -> Json:
    """The chair's status and synthesis, for a run with a chair."""
    s, c = StepProgress, ChairReport
    chair = Run.parameters["chair"]
    step = (
        sa.select(s.status, s.error)
        .where(s.run_id == Run.id, s.step_name == CHAIR_STEP)
        .correlate(Run)
        .subquery()
    )
    report = sa.select(c).where(c.run_id == Run.id).correlate(Run).subquery()
    document = _obj(
        ("status", step.c.status),
        ("model", sa.func.coalesce(report.c.model, chair["model"].as_string())),
        ("provider", report.c.provider),
        ("fallback", sa.func.coalesce(report.c.fallback, False)),
        ("model_written", sa.true()),
        ("report", report.c.report),
        ("error", step.c.error),
    )
    found = sa.select(document).select_from(step.outerjoin(report, sa.true()))
    return sa.case(
        (sa.func.jsonb_typeof(chair) == "object", found.scalar_subquery()),
    )


def _error() -> Json:
    failed = Run.status.in_([RunStatus.FAILED, RunStatus.CANCELLED])
    return sa.case((failed, _obj(("code", Run.error_code), ("message", Run.error))))


def _revision() -> Json:
    s = StepProgress
    plan = (
        sa.select(s.step_metadata["plan"])
        .where(s.run_id == Run.id, s.step_name == EXPAND_STEP)
        .scalar_subquery()
    )
    document = _obj(
        ("parent_run_id", Run.parent_run_id),
        ("edited_proposal", Run.edited_proposal),
        ("edit_notes", Run.edit_notes),
        ("rerun_personas", Run.parameters["rerun_personas"]),
        ("plan", sa.case((sa.func.jsonb_typeof(plan) == "object", plan))),
    )
    return sa.case((Run.run_type == RunType.REVISION, document))


_IDENTITY: tuple[tuple[str, Any], ...] = (
    ("run_id", Run.id),
    ("status", Run.status),
    ("run_type", Run.run_type),
    ("priority", Run.priority),
    ("parent_run_id", Run.parent_run_id),
)
"""What names a run, first in both its detail and its list item."""


def _moments(*names: str) -> tuple[tuple[str, Json], ...]:
    """The run's timestamps ``names``, each under its own name."""
    return tuple((name, moment(getattr(Run, name))) for name in names)


def _detail() -> prepared.Statement:
    document = _obj(
        *_IDENTITY,
        *_moments(
            "created_at", "updated_at", "queued_at", "started_at", "completed_at", "deadline_at"
        ),
        ("idea", Run.idea),
        ("extra_context", Run.extra_context),
        (
            "models",
            _obj(
                ("expand_model", Run.expand_model),
                ("expand_temperature", number(Run.expand_temperature)),
                ("review_model", Run.review_model),
                ("review_temperature", number(Run.review_temperature)),
                (
                    "review_rounds",
                    sa.func.coalesce(Run.parameters["review_rounds"].as_integer(), 1),
                ),
                ("chair_model", Run.parameters["chair"]["model"].as_string()),
                ("chair_fallback_model", Run.parameters["chair"]["fallback_model"].as_string()),
            ),
        ),
        ("personas", _personas()),
        ("schema_version", Run.schema_version),
        ("prompt_set_version", Run.prompt_set_version),
        ("proposal", _proposal()),
        ("reviews", _reviews()),
        ("decision", _decision()),
        ("steps", _steps()),
        ("usage", _usage()),
        ("error", _error()),
        ("revision", _revision()),
        ("chair", _chair()),
        ("links", _links(Run.id)),
    )
    statement = sa.select(sa.cast(document, sa.Text))
    return prepared.Statement(
        "ce_run_detail",
        ("uuid", "text"),
        statement.where(Run.id == prepared.arg(1), Run.tenant == prepared.arg(2)),
    )


_DETAIL = _detail()


def run_detail(session: Session, run_id: uuid.UUID, *, tenant: str) -> bytes | None:
    """``GET /v1/runs/{id}``'s answer, if the run belongs to ``tenant``."""
    text = prepared.execute(session, _DETAIL, str(run_id), tenant).scalar()
    return None if text is None else text.encode()


def idea_preview() -> sa.ColumnElement[str]:
    """The start of the idea, for a list row whose run has no title yet (both databases)."""
    return sa.func.substr(Run.idea, 1, IDEA_PREVIEW_CHARS)


def list_item() -> Json:
    """A run as ``GET /v1/runs`` lists it (``reads.list_runs`` adds the joins and filters)."""
    proposal = ProposalVersion.proposal
    return sa.cast(
        _obj(
            *_IDENTITY,
            *_moments("created_at", "queued_at", "started_at", "completed_at"),
            ("decision", Run.decision),
            ("overall_score", number(Run.overall_score)),
            ("proposal_title", proposal["title"].as_string()),
            ("proposal_summary", proposal["summary"].as_string()),
            ("idea_preview", idea_preview()),
        ),
        sa.Text,
    )


def run_list(items: Sequence[str], limit: int, next_cursor: str | None) -> bytes:
    """``GET /v1/runs``'s answer around the rendered items."""
    tail = f'],"limit":{limit},"next_cursor":{json.dumps(next_cursor)}}}'
    return ('{"runs":[' + ",".join(items) + tail).encode()
