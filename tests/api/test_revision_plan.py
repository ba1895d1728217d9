"""The plan a revision's 202 answer promises is the plan the worker carries out.

The API answers before the worker runs, and both compute the plan from one function
(``domain.revisions.plan_revision``); these runs prove it end to end, over HTTP, for
every case where the answer is exact: personas forced to re-run, direct edits that
change sections, and a parent that lacks a review.
"""

from __future__ import annotations

import uuid
from typing import Any

from consensus_engine.devtools.loopback import ApiClient

from .conftest import ApiFactory, ApiHarness

IDEA = "Let people book a bike repair slot online and get a text when it is ready."


def _completed(api: ApiHarness, run_id: str) -> None:
    run = api.stack.wait_for(uuid.UUID(run_id))
    assert run.status.value == "completed", (run.error_code, run.error)


def _revise(client: ApiClient, parent: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response = client.post(f"/v1/runs/{parent}/revisions", body)
    assert response.status == 202, response.body
    answer = response.json()
    assert answer["plan"]["exact"] is True, answer["plan"]
    return answer["run_id"], answer["plan"]


def _stored_plan(api: ApiHarness, run_id: str) -> dict[str, Any]:
    _completed(api, run_id)
    detail = api.acme.get(f"/v1/runs/{run_id}").json()
    plan: dict[str, Any] = detail["revision"]["plan"]
    return plan


def _same(promised: dict[str, Any], stored: dict[str, Any]) -> None:
    """Who re-runs, who is reused, in which order, and why: all as the answer said."""
    assert stored["rerun"] == promised["rerun"]
    assert stored["reused"] == promised["reused"]
    assert stored["reasons"] == promised["reasons"]


def test_the_answered_plan_is_the_plan_the_worker_stores(make_api: ApiFactory) -> None:
    api = make_api()
    # A quorum of four lets a run complete without one persona's review.
    api.stack.start_worker(env={"REVIEW_QUORUM": "4"})
    submitted = api.acme.post("/v1/runs", {"idea": IDEA})
    assert submitted.status == 202, submitted.body
    parent = submitted.json()["run_id"]
    _completed(api, parent)

    # Direct edits that change sections: the plan follows the sections each persona reviews.
    edited, promised = _revise(
        api.acme,
        parent,
        {"edited_proposal": {"summary": "Online booking for bike repairs, with SMS."}},
    )
    _same(promised, _stored_plan(api, edited))

    # A parent without the architect's review: the architect is refused by the LLM (401,
    # not retried), and the quorum of four lets that revision complete anyway.
    api.stack.llm.push_faults("401")
    lacking, promised = _revise(api.acme, parent, {"rerun_personas": ["architect"]})
    _same(promised, _stored_plan(api, lacking))
    reviewed = {r["persona_id"] for r in api.acme.get(f"/v1/runs/{lacking}").json()["reviews"]}
    assert "architect" not in reviewed

    # Forced personas on that parent: those chosen plus the one it has no review from,
    # listed in persona order (the architect comes first although it was not chosen).
    forced, promised = _revise(api.acme, lacking, {"rerun_personas": ["user_advocate", "critic"]})
    assert promised["rerun"] == ["architect", "critic", "user_advocate"]
    assert promised["reasons"]["architect"] == ["no review in the parent run"]
    _same(promised, _stored_plan(api, forced))


def test_a_plan_is_previewed_before_anything_is_stored(make_api: ApiFactory) -> None:
    api = make_api()
    parent = api.acme.post("/v1/runs", {"idea": IDEA}).json()["run_id"]
    queued = api.acme.post(f"/v1/runs/{parent}/revisions/plan", {"edit_notes": "Cheaper."})
    assert queued.status == 409, queued.body  # no worker yet: the parent is still queued
    api.stack.start_worker()
    _completed(api, parent)
    runs_before = api.acme.get("/v1/runs").json()["runs"]

    body = {"edited_proposal": {"summary": "Online booking for bike repairs, with SMS."}}
    preview = api.acme.post(f"/v1/runs/{parent}/revisions/plan", body)
    assert preview.status == 200, preview.body
    assert api.acme.get("/v1/runs").json()["runs"] == runs_before  # nothing stored
    _, promised = _revise(api.acme, parent, body)
    assert preview.json() == promised

    notes = api.acme.post(f"/v1/runs/{parent}/revisions/plan", {"edit_notes": "Add SMS."})
    assert notes.status == 200 and notes.json()["exact"] is False
    unknown = api.acme.post(f"/v1/runs/{parent}/revisions/plan", {"rerun_personas": ["nobody"]})
    assert unknown.status == 422
    empty = api.acme.post(f"/v1/runs/{parent}/revisions/plan", {})
    assert empty.status == 422
    assert api.globex.post(f"/v1/runs/{parent}/revisions/plan", body).status == 404
