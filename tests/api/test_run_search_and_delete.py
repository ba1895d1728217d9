"""Finding, ordering and deleting runs over real HTTP: ``GET /v1/runs`` with ``q`` and
``sort``, and ``DELETE /v1/runs/{id}``."""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from consensus_engine.db.models import (
    DecisionRecord,
    LlmCall,
    PersonaReview,
    ProposalVersion,
    Run,
    StepProgress,
)
from consensus_engine.domain.revisions import ProposalSource
from consensus_engine.domain.schemas import DecisionLabel
from consensus_engine.observability.logs import lifecycle_fields

from .conftest import ApiFactory, ApiHarness
from .test_runs import IDEA, assert_no_server_errors, envelope, submit

OWNED = (StepProgress, ProposalVersion, PersonaReview, DecisionRecord)


def listed(api: ApiHarness, **query: Any) -> dict[str, Any]:
    response = api.acme.get("/v1/runs?" + urllib.parse.urlencode(query))
    assert response.status == 200, response.body
    body: dict[str, Any] = response.json()
    return body


def ids(api: ApiHarness, **query: Any) -> list[str]:
    return [run["run_id"] for run in listed(api, **query)["runs"]]


def test_search_finds_a_run_by_a_word_of_its_proposal(api: ApiHarness) -> None:
    target = submit(api.acme, {"idea": "Heat the bike workshop for less."})
    other = submit(api.acme, {"idea": f"{IDEA} Nothing about heat."})
    submit(api.globex, {"idea": "A geothermal loop for globex."})
    with api.stack.sessions() as session:
        session.add(
            ProposalVersion(
                run_id=uuid.UUID(target),
                proposal={
                    "title": "Cheaper heating",
                    "summary": "Lower the bills.",
                    "problem_statement": "Gas is expensive.",
                    "proposed_solution": "Drill a geothermal loop under the yard.",
                    "assumptions": [],
                    "scope_non_goals": [],
                },
                source=ProposalSource.EXPANDED,
            )
        )
        session.commit()

    assert ids(api, q="geothermal") == [target]  # only in the proposal's body
    assert ids(api, q="Geothermal workshop") == [target]  # one in the idea, one there
    assert ids(api, q="geothermal sauna") == []
    assert ids(api, q='"geothermal loop"') == [target]
    assert ids(api, q="heat") == [other, target]
    assert ids(api, q="heat -geothermal") == [other]
    assert_no_server_errors(api)


def test_sort_by_score_and_decision_in_pages(api: ApiHarness) -> None:
    graded = [
        (0.9, DecisionLabel.APPROVE),
        (0.65, DecisionLabel.REVISE),
        (0.2, DecisionLabel.REJECT),
        (None, None),
        (0.95, DecisionLabel.APPROVE),
    ]
    runs = [submit(api.acme, {"idea": f"{IDEA} Variant {n}."}) for n in range(len(graded))]
    with api.stack.sessions() as session:
        for run_id, (score, label) in zip(runs, graded, strict=True):
            session.execute(
                sa.update(Run)
                .where(Run.id == uuid.UUID(run_id))
                .values(overall_score=score, decision=label)
            )
        session.commit()

    def paged(**query: Any) -> list[str]:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            body = listed(api, limit=2, **query, **({"cursor": cursor} if cursor else {}))
            seen += [run["run_id"] for run in body["runs"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return seen

    assert paged(sort="score") == [runs[i] for i in (4, 0, 1, 2, 3)]
    assert paged(sort="score", direction="asc") == [runs[i] for i in (2, 1, 0, 4, 3)]
    # Ties (two approvals) newest first, in either direction; undecided last.
    assert paged(sort="decision") == [runs[i] for i in (4, 0, 1, 2, 3)]
    assert paged(sort="decision", direction="asc") == [runs[i] for i in (2, 1, 4, 0, 3)]
    assert paged(sort="created", direction="asc") == runs
    assert paged() == list(reversed(runs))

    by_score = listed(api, sort="score", limit=2)["next_cursor"]
    refused = envelope(api.acme.get(f"/v1/runs?limit=2&cursor={by_score}"), 400, "INVALID_CURSOR")
    assert "sort=score" in refused["message"]
    envelope(api.acme.get("/v1/runs?sort=shoe_size"), 422, "VALIDATION_ERROR")
    envelope(api.acme.get("/v1/runs?direction=up"), 422, "VALIDATION_ERROR")
    assert_no_server_errors(api)


def owned_rows(api: ApiHarness, run_id: str) -> dict[str, int]:
    with api.stack.sessions() as session:
        return {
            model.__tablename__: session.scalar(
                sa.select(sa.func.count())
                .select_from(model)
                .where(model.run_id == uuid.UUID(run_id))
            )
            or 0
            for model in (*OWNED, LlmCall)
        }


def test_delete_a_run_keeps_its_revision_and_its_spend(
    make_api: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    api = make_api()
    waiting = submit(api.acme)
    refused = envelope(api.acme.request("DELETE", f"/v1/runs/{waiting}"), 409, "CONFLICT")
    assert refused["details"] == {"status": "queued"} and "cancel it first" in refused["message"]
    api.stack.start_worker()
    parent = submit(api.acme)
    api.stack.wait_for(uuid.UUID(parent))
    edits = {"edited_proposal": {"summary": "Bikes, with SMS."}, "rerun_personas": ["critic"]}
    response = api.acme.post(f"/v1/runs/{parent}/revisions", edits)  # the rest reused
    assert response.status == 202, response.body
    child = response.json()["run_id"]
    assert api.stack.wait_for(uuid.UUID(child)).status.value == "completed"
    reused = api.acme.get(f"/v1/runs/{child}").json()["reviews"]
    assert any(review["source_run_id"] == parent for review in reused)
    before = owned_rows(api, parent)
    assert all(before.values()), before
    usage = api.acme.get("/v1/usage").json()

    envelope(api.globex.request("DELETE", f"/v1/runs/{parent}"), 404, "NOT_FOUND")
    assert api.acme.get(f"/v1/runs/{parent}").status == 200
    caplog.set_level(logging.INFO, logger="consensus_engine.lifecycle")
    deleted = api.acme.request("DELETE", f"/v1/runs/{parent}")

    assert deleted.status == 204 and deleted.body == b""
    envelope(api.acme.get(f"/v1/runs/{parent}"), 404, "NOT_FOUND")
    envelope(api.acme.request("DELETE", f"/v1/runs/{parent}"), 404, "NOT_FOUND")
    assert owned_rows(api, parent) == dict.fromkeys(before, 0)
    with api.stack.sessions() as session:
        orphans = session.scalar(
            sa.select(sa.func.count()).select_from(LlmCall).where(LlmCall.run_id.is_(None))
        )
    assert orphans == before["llm_calls"]  # kept, without their run
    assert api.acme.get("/v1/usage").json() == usage  # the spend did not change
    kept = api.acme.get(f"/v1/runs/{child}").json()
    assert kept["status"] == "completed" and kept["parent_run_id"] is None
    assert all(review["source_run_id"] is None for review in kept["reviews"])
    assert ids(api) == [child, waiting]
    audit = [
        fields
        for record in caplog.records
        if (fields := lifecycle_fields(record)).get("lifecycle_event") == "run_deleted"
    ]
    assert [(a["run_id"], a["tenant"], a["reason"], a["status"]) for a in audit] == [
        (parent, "acme", "requested", "completed")
    ]
    assert_no_server_errors(api)
