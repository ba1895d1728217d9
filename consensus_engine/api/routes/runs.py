"""Runs: submit, list, show, delete.

Submitting goes through the run service (``pipeline/service.py``), which stores the run
and its pending steps, commits, and only then publishes the first message;
``Idempotency-Key`` makes a repeat safe. Every run belongs to the caller's tenant.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BeforeValidator
from starlette.concurrency import run_in_threadpool

from consensus_engine.api import presenters
from consensus_engine.api.accepted import accepted
from consensus_engine.api.errors import ApiError, invalid
from consensus_engine.api.idempotency import IdempotencyKey, idempotency
from consensus_engine.api.inputs import (
    catalogued_models,
    idea_and_context,
    model_choices,
    panel,
    storable,
)
from consensus_engine.api.openapi import RUN_LINKS, errors
from consensus_engine.api.schemas import RunAccepted, RunDetail, RunList, SubmitRunRequest
from consensus_engine.api.state import PrincipalDep, SessionDep, StateDep
from consensus_engine.api.tenancy import not_found, refusal
from consensus_engine.db import documents, reads
from consensus_engine.db.reads import (
    Cursor,
    Direction,
    InvalidCursor,
    Ordering,
    RunFilters,
    RunSort,
)
from consensus_engine.domain.runs import RunStatus, RunType
from consensus_engine.domain.schemas import DecisionLabel
from consensus_engine.pipeline.config import expand_choice, review_choice
from consensus_engine.pipeline.refusals import RunRefused
from consensus_engine.pipeline.service import NewRun

router = APIRouter(prefix="/v1", tags=["runs"])


# -- submit -------------------------------------------------------------------------------------


_SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **errors(400, 409, 413),
    200: {
        "model": RunAccepted,
        "description": "idempotent replay: the run an earlier request with the same "
        "Idempotency-Key and body created (no new run)",
    },
    202: {
        "description": "stored; see `enqueued`. Location names the run",
        "links": RUN_LINKS,
    },
}


async def submit(
    body: SubmitRunRequest,
    response: Response,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> RunAccepted:
    """Store a run (expand, one review per persona, aggregate) and enqueue its first step.

    Checking the request and building the answer take no I/O and stay on the event loop;
    only the run service (database, confirmed publish) goes to the thread pool, once.
    """
    settings = state.settings
    idea, context = idea_and_context(body.idea, body.extra_context, settings)
    catalogued_models(state, body)
    expand, review = model_choices(body, expand_choice(settings), review_choice(settings))
    personas, council = panel(state, body)
    new = NewRun(
        idea=idea,
        personas=personas,
        expand=expand,
        review=review,
        extra_context=context,
        priority=body.priority,
        council=council,
    )
    key = idempotency(idempotency_key, "run", body)
    try:
        outcome = await run_in_threadpool(
            state.runs.submit, new, tenant=principal.tenant, idempotency=key
        )
    except RunRefused as error:
        raise refusal(error) from None
    return RunAccepted(**accepted(response, outcome, settings.sweeper_requeue_after_seconds))


for _path, _operation, _summary in (
    ("/full-review", "submit_full_review", "Submit an idea (the earlier system's path)"),
    ("/runs", "submit_run", "Submit an idea for a full review"),
):
    router.add_api_route(
        _path,
        submit,
        methods=["POST"],
        status_code=202,
        response_model=RunAccepted,
        summary=_summary,
        responses=_SUBMIT_RESPONSES,
        operation_id=_operation,
    )


def _runs_allow() -> None:
    """``/v1/runs`` is two routes (GET lists, POST submits); without this, another method
    would get a 405 whose ``Allow`` names only one of them."""
    raise ApiError(
        405,
        "METHOD_NOT_ALLOWED",
        "/v1/runs accepts GET (list) and POST (submit)",
        headers={"Allow": "GET, POST"},
    )


router.add_api_route(
    "/runs",
    _runs_allow,
    methods=["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
    include_in_schema=False,
)

# -- list ---------------------------------------------------------------------------------------


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: object) -> object:
    """Pydantic would read ``0.5`` as a Unix timestamp; the schema promises ISO 8601."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date-time with a time zone")
    return value


IsoMoment = Annotated[AwareDatetime, BeforeValidator(_iso_only)]


def _search_text(q: str | None) -> str | None:
    """The text to look for; blank means no search."""
    if q is None or not q.strip():
        return None
    storable("q", q, part="query")
    return q.strip()


def _utc(name: str, moment: datetime | None) -> datetime | None:
    """In UTC, as stored; a moment UTC cannot represent (year 1 east of Greenwich) is a 422."""
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise invalid(name, f"{name} is out of the supported range", part="query") from None


def _no_offset(offset: str | None) -> None:
    """The earlier system paged with ``offset``; ignored, a client would get page one
    forever, so it is refused and pointed at the cursor."""
    if offset is not None:
        raise ApiError(
            400,
            "OFFSET_NOT_SUPPORTED",
            "offset paging is not supported: pass the next_cursor of the previous page as "
            "cursor (the first page has none)",
            details={"parameter": "offset", "use": "cursor"},
        )


def _legacy_moment(name: str, value: str | None, *, end_of_day: bool) -> datetime | None:
    """``start_date``/``end_date``, the earlier system's names: a date (that UTC day, whole)
    or an ISO 8601 date-time with a time zone."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max if end_of_day else time.min, UTC)
        moment = datetime.fromisoformat(value) if _ISO_DATE.match(value) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise invalid(
            name,
            f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 date-time with a time zone",
            part="query",
        )
    return _utc(name, moment)


def _one_of(
    name: str, alias: str, value: datetime | None, aliased: datetime | None
) -> datetime | None:
    """One bound given by either of its names; both at once may disagree, so it is a 422."""
    if value is not None and aliased is not None:
        raise invalid(alias, f"{alias} is another name for {name}: give one of them", part="query")
    return value if value is not None else aliased


@router.get(
    "/runs",
    operation_id="list_runs",
    response_model=RunList,
    summary="List this tenant's runs, newest first (or by score or decision)",
    responses=errors(400),
)
def list_runs(
    session: SessionDep,
    principal: PrincipalDep,
    status: RunStatus | None = None,
    run_type: RunType | None = None,
    parent_run_id: uuid.UUID | None = None,
    decision: DecisionLabel | None = None,
    min_confidence: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    created_after: Annotated[
        IsoMoment | None, Query(description="inclusive; ISO 8601 with a time zone")
    ] = None,
    created_before: Annotated[
        IsoMoment | None, Query(description="inclusive; ISO 8601 with a time zone")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="words found in the idea or the proposal (title, summary, any of "
            'its text): every word, stemmed (English); "a phrase", `or`, `-word` to '
            "leave out. On SQLite: every word as a substring, ignoring case",
        ),
    ] = None,
    sort: Annotated[
        RunSort,
        Query(
            description="created; score (unscored runs last); decision (approve, revise, "
            "reject; undecided runs last). Ties: newest first"
        ),
    ] = RunSort.CREATED,
    direction: Annotated[
        Direction, Query(description="desc: newest, highest, approve first; asc: the reverse")
    ] = Direction.DESC,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: Annotated[
        str | None,
        Query(max_length=500, description="next_cursor of the previous page, same sort"),
    ] = None,
    # The earlier system's names: answered (see the README), not advertised.
    offset: Annotated[str | None, Query(include_in_schema=False)] = None,
    start_date: Annotated[str | None, Query(include_in_schema=False)] = None,
    end_date: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> RunList | Response:
    """Pages never overlap or skip when runs are added meanwhile: each is read after the
    last run of the one before, by (sort key, creation time, id). A cursor continues the
    sort it was read in; another sort's is a 400 (INVALID_CURSOR). ``min_confidence``
    leaves out runs without a score."""
    _no_offset(offset)
    ordering = Ordering(sort, direction)
    try:
        after = Cursor.decode(cursor, ordering) if cursor is not None else None
    except InvalidCursor as error:
        raise ApiError(400, "INVALID_CURSOR", str(error)) from None
    since = _one_of(
        "created_after",
        "start_date",
        _utc("created_after", created_after),
        _legacy_moment("start_date", start_date, end_of_day=False),
    )
    until = _one_of(
        "created_before",
        "end_date",
        _utc("created_before", created_before),
        _legacy_moment("end_date", end_date, end_of_day=True),
    )
    filters = RunFilters(
        status=status,
        run_type=run_type,
        parent_run_id=parent_run_id,
        decision=decision,
        min_confidence=min_confidence,
        created_after=since,
        created_before=until,
        text=_search_text(q),
    )
    rendered = documents.supported(session)
    page = reads.list_runs(
        session,
        tenant=principal.tenant,
        filters=filters,
        limit=limit,
        after=after,
        rendered=rendered,
        ordering=ordering,
    )
    next_cursor = page.next_cursor.encode() if page.next_cursor else None
    if rendered:
        items = [row.document for row in page.rows]
        return Response(
            documents.run_list(items, limit, next_cursor), media_type="application/json"
        )
    runs = [presenters.list_item(row) for row in page.rows]
    return RunList(runs=runs, limit=limit, next_cursor=next_cursor)


# -- detail -------------------------------------------------------------------------------------


@router.get(
    "/runs/{run_id}",
    operation_id="get_run",
    response_model=RunDetail,
    summary="Everything about one run: input, proposal, full reviews, decision, progress, cost",
    responses=errors(404),
)
def get_run(
    run_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> RunDetail | Response:
    # On PostgreSQL the database renders the answer in one statement, sent as it is (a
    # docstring here would become the operation's description in the OpenAPI schema).
    if documents.supported(session):
        document = documents.run_detail(session, run_id, tenant=principal.tenant)
        if document is None:
            raise not_found(run_id)
        return Response(document, media_type="application/json")
    run = reads.get_run(session, run_id, tenant=principal.tenant, detailed=True)
    if run is None:
        raise not_found(run_id)
    return presenters.run_detail(session, run)


# -- delete -------------------------------------------------------------------------------------


@router.delete(
    "/runs/{run_id}",
    operation_id="delete_run",
    status_code=204,
    response_class=Response,
    summary="Delete an ended run and everything of it",
    responses=errors(404, 409),
)
def delete_run(run_id: uuid.UUID, state: StateDep, principal: PrincipalDep) -> Response:
    """Its steps, proposal, reviews, decision and chair report go; its revisions stay,
    without their parent link; its LLM calls stay counted against the tenant's budget. A
    queued or running run is refused (409: cancel it first), and so is a run a revision
    under way reads (409). Another tenant's run is a 404, as a missing one."""
    try:
        state.runs.delete(run_id, tenant=principal.tenant)
    except RunRefused as error:
        raise refusal(error) from None
    return Response(status_code=204)
