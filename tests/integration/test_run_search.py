"""Finding and ordering a tenant's runs (``reads.list_runs``) on PostgreSQL and on SQLite:
text search over the idea and the whole proposal, and keyset pages in every sort."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session
from support import alembic_config

from consensus_engine.api import presenters
from consensus_engine.db import documents, reads
from consensus_engine.db.engine import create_engine_from_url, session_factory
from consensus_engine.db.models import ProposalVersion, Run
from consensus_engine.db.reads import (
    Cursor,
    Direction,
    InvalidCursor,
    Ordering,
    RunFilters,
    RunSort,
)
from consensus_engine.domain.revisions import ProposalSource
from consensus_engine.domain.runs import RunStatus
from consensus_engine.domain.schemas import DecisionLabel

from .test_models import new_run

TENANT = "acme"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def session(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Session]:
    """A session on a migrated PostgreSQL (emptied after) or SQLite database."""
    if request.param == "postgresql":
        yield request.getfixturevalue("db_session")
        return
    command.upgrade(alembic_config(sqlite_url), "head")
    engine = create_engine_from_url(sqlite_url)
    try:
        with session_factory(engine)() as sqlite:
            yield sqlite
    finally:
        engine.dispose()


def add_run(
    session: Session,
    idea: str = "A plain idea.",
    *,
    tenant: str = TENANT,
    proposal: dict[str, Any] | None = None,
    created_at: datetime = START,
    score: float | None = None,
    decision: DecisionLabel | None = None,
) -> Run:
    run = new_run(session, idea=idea, tenant=tenant)
    run.created_at, run.overall_score, run.decision = created_at, score, decision
    if decision is not None:
        run.status = RunStatus.COMPLETED
    if proposal is not None:
        session.add(
            ProposalVersion(run_id=run.id, proposal=proposal, source=ProposalSource.EXPANDED)
        )
    session.commit()
    return run


def proposal(**fields: Any) -> dict[str, Any]:
    return {
        "title": "Workshop upgrades",
        "summary": "Make the workshop cheaper to run.",
        "problem_statement": "Bills are high.",
        "proposed_solution": "Spend less.",
        "assumptions": [],
        "scope_non_goals": [],
    } | fields


def found(session: Session, text: str, **filters: Any) -> list[uuid.UUID]:
    page = reads.list_runs(
        session, tenant=TENANT, filters=RunFilters(text=text, **filters), limit=100
    )
    return [row.run_id for row in page.rows]


# -- search -------------------------------------------------------------------------------------


def test_a_word_only_in_the_proposal_s_body_finds_the_run(session: Session) -> None:
    body = proposal(
        proposed_solution="Drill a Geothermal loop under the yard.",
        assumptions=["the ground is soft"],
    )
    run = add_run(session, "Cut the heating bill of the bike shop.", proposal=body)
    add_run(session, "Geothermal, but another tenant's.", tenant="globex")
    add_run(session, "Something else entirely.", proposal=proposal())

    assert found(session, "geothermal") == [run.id]  # any case; not another tenant's
    assert found(session, "soft") == [run.id]  # an item of a list in the proposal
    assert found(session, "bike geothermal") == [run.id]  # one word each side: found
    assert found(session, "geothermal sewing") == []  # every word must be there
    # The proposal's field names are not its text.
    assert found(session, "assumptions") == []


def test_the_idea_and_the_title_are_still_found(session: Session) -> None:
    solar = add_run(session, "Put SOLAR panels on the depot roof.")
    percent = add_run(session, "Cut idle time by 50% at the depot.")
    titled = add_run(session, proposal=proposal(title="Heat pumps for the workshop"))

    assert found(session, "solar") == [solar.id]
    assert found(session, "  Solar Panels ") == [solar.id]
    assert found(session, "HEAT PUMP") == [titled.id]
    assert found(session, "50%") == [percent.id]
    assert found(session, "5_%") == []
    assert set(found(session, "depot")) == {solar.id, percent.id}


@pytest.mark.postgres
def test_postgresql_searches_words_stemmed_with_web_search_syntax(db_session: Session) -> None:
    pumps = add_run(db_session, "Install heat pumps in the booking office.")
    loop = add_run(db_session, proposal=proposal(proposed_solution="A ground source loop."))

    assert found(db_session, "pump") == [pumps.id]  # stemmed: pump finds pumps
    assert found(db_session, "booked") == [pumps.id]
    assert found(db_session, '"ground source"') == [loop.id]  # a phrase
    assert found(db_session, '"source ground"') == []
    assert set(found(db_session, "pump or loop")) == {pumps.id, loop.id}
    assert found(db_session, "workshop -loop") == []  # loop's proposal names the workshop
    assert found(db_session, "the") == []  # only a stop word: nothing to look for


@pytest.mark.postgres
def test_the_search_vector_follows_the_proposal(db_session: Session) -> None:
    run = add_run(db_session, "Paint the fence.")
    assert found(db_session, "turquoise") == []
    row = ProposalVersion(
        run_id=run.id, proposal=proposal(summary="Turquoise."), source=ProposalSource.EXPANDED
    )
    db_session.add(row)
    db_session.commit()
    assert found(db_session, "turquoise") == [run.id]

    row.proposal = proposal(summary="Crimson.")
    db_session.commit()
    assert found(db_session, "turquoise") == []
    assert found(db_session, "crimson fence") == [run.id]


@pytest.mark.postgres
def test_the_search_can_use_its_gin_index(db_session: Session) -> None:
    add_run(db_session, "Anything.")
    db_session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    query = sa.select(Run.id).where(reads.text_search("anything", "postgresql"))
    compiled = query.compile(db_session.get_bind(), compile_kwargs={"literal_binds": True})
    plan = "\n".join(db_session.execute(sa.text(f"EXPLAIN {compiled}")).scalars())
    assert "ix_runs_search_vector" in plan, plan


# -- sort ---------------------------------------------------------------------------------------

RANK = {DecisionLabel.APPROVE: 3, DecisionLabel.REVISE: 2, DecisionLabel.REJECT: 1}


def expected_order(runs: list[Run], ordering: Ordering) -> list[uuid.UUID]:
    """The order the API promises, computed here from the rows."""
    descending = ordering.direction is Direction.DESC
    if ordering.sort is RunSort.CREATED:
        ordered = sorted(runs, key=lambda r: (r.created_at, r.id), reverse=descending)
        return [run.id for run in ordered]

    def key(run: Run) -> float:
        if ordering.sort is RunSort.SCORE:
            value = run.overall_score
        else:
            value = None if run.decision is None else RANK[run.decision]
        if value is None:  # last, either way
            return float("-inf")
        return value if descending else -value

    newest_first = sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)
    return [run.id for run in sorted(newest_first, key=key, reverse=True)]


@pytest.fixture
def scored(session: Session) -> list[Run]:
    """Runs with ties on every key, unscored and undecided ones, and equal creation times."""
    rows = [
        (0.9, DecisionLabel.APPROVE, 0),
        (0.7, DecisionLabel.REVISE, 1),
        (0.7, DecisionLabel.REVISE, 2),
        (0.3, DecisionLabel.REJECT, 3),
        (None, None, 4),
        (None, None, 4),  # created at the same moment: the id decides
        (0.85, DecisionLabel.APPROVE, 5),
        (0.0, DecisionLabel.REJECT, 6),
    ]
    return [
        add_run(session, score=score, decision=label, created_at=START + timedelta(minutes=minutes))
        for score, label, minutes in rows
    ]


ORDERINGS = [Ordering(sort, direction) for sort in RunSort for direction in Direction]


@pytest.mark.parametrize("ordering", ORDERINGS, ids=lambda o: f"{o.sort}-{o.direction}")
def test_pages_follow_each_sort_without_overlap_or_gap(
    session: Session, scored: list[Run], ordering: Ordering
) -> None:
    seen: list[uuid.UUID] = []
    after: Cursor | None = None
    for _ in range(len(scored)):
        page = reads.list_runs(
            session, tenant=TENANT, filters=RunFilters(), limit=3, after=after, ordering=ordering
        )
        seen += [row.run_id for row in page.rows]
        if page.next_cursor is None:
            break
        after = Cursor.decode(page.next_cursor.encode(), ordering)  # as a client sends it
    assert seen == expected_order(scored, ordering)


@pytest.mark.postgres
@pytest.mark.parametrize("ordering", ORDERINGS, ids=lambda o: f"{o.sort}-{o.direction}")
def test_the_rendered_page_is_the_presented_one_in_every_sort(
    db_session: Session, scored: list[Run], ordering: Ordering
) -> None:
    def page(rendered: bool) -> tuple[list[Any], str | None]:
        result = reads.list_runs(
            db_session,
            tenant=TENANT,
            filters=RunFilters(),
            limit=3,
            rendered=rendered,
            ordering=ordering,
        )
        cursor = result.next_cursor.encode() if result.next_cursor else None
        if rendered:
            return [json.loads(row.document) for row in result.rows], cursor
        items = [presenters.list_item(row).model_dump(mode="json") for row in result.rows]
        return items, cursor

    assert documents.supported(db_session)
    assert page(rendered=True) == page(rendered=False)


def test_a_cursor_continues_only_its_own_sort(session: Session, scored: list[Run]) -> None:
    by_score = Ordering(RunSort.SCORE)
    page = reads.list_runs(session, tenant=TENANT, filters=RunFilters(), limit=2, ordering=by_score)
    assert page.next_cursor is not None
    token = page.next_cursor.encode()
    assert Cursor.decode(token, by_score) == page.next_cursor
    for other in (Ordering(), Ordering(RunSort.SCORE, Direction.ASC), Ordering(RunSort.DECISION)):
        with pytest.raises(InvalidCursor, match="sort=score&direction=desc"):
            Cursor.decode(token, other)
    with pytest.raises(InvalidCursor):
        reads.list_runs(
            session, tenant=TENANT, filters=RunFilters(), limit=2, after=page.next_cursor
        )


def _token(fields: list[Any]) -> str:
    raw = json.dumps(fields).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_cursors_of_the_first_version_and_forged_ones() -> None:
    run_id = uuid.uuid4()
    legacy = Cursor.decode(_token([START.isoformat(), str(run_id)]), Ordering())
    assert legacy == Cursor(START, run_id)  # the default order, newest first
    moment, rid = START.isoformat(), str(run_id)
    for forged in (
        ["score", "desc", "high", moment, rid],  # a key of the wrong kind
        ["score", "desc", 7.5, moment, rid],
        ["decision", "asc", 1.5, moment, rid],
        ["decision", "asc", True, moment, rid],
        ["created", "desc", 0.5, moment, rid],
        ["shoe size", "desc", None, moment, rid],
        ["created", "sideways", None, moment, rid],
        {"created": moment},
    ):
        with pytest.raises(InvalidCursor, match="not one this server returned"):
            Cursor.decode(_token(forged))  # type: ignore[arg-type]
