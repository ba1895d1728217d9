"""The runs API over real HTTP: submit, list, show, follow, revise, diff, cancel, retry.

Everything is real: uvicorn serving the app, PostgreSQL, the Pub/Sub emulator, the
offline LLM server and, where runs must finish, a worker process.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from consensus_engine.api.routes import events as events_routes
from consensus_engine.db.models import ProposalVersion, Run
from consensus_engine.devtools.loopback import ApiClient, Response, http_request
from consensus_engine.devtools.service import WorkerProcess
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.domain.revisions import ProposalSource

from .conftest import ApiFactory, ApiHarness

IDEA = "Let people book a bike repair slot online and get a text when it is ready."
PERSONA_IDS = list(DEFAULT_PERSONAS.ids)
OVERRIDE_MODEL = "gpt-4o-mini"  # priced, unlike an invented name, and not the default
CATALOGUE = {
    "MODEL_CATALOGUE_JSON": json.dumps({m: {} for m in ("gpt-4.1-mini", "gpt-4.1", OVERRIDE_MODEL)})
}
"""Settings (API and worker) that allow the models these tests choose besides the default."""


# -- helpers ------------------------------------------------------------------------------------


def header(response: Response, name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in response.headers.items() if k.lower() == wanted), None)


def envelope(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert an error answer is the envelope, tied to its X-Request-ID, and return it."""
    assert response.status == status, response.body
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details", "request_id"}, body
    assert body["request_id"] and body["request_id"] == header(response, "x-request-id")
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code, body
    return body


def submit(client: ApiClient, body: Mapping[str, Any] | None = None, **options: Any) -> str:
    response = client.post("/v1/runs", {"idea": IDEA, **(body or {})}, **options)
    assert response.status == 202, response.body
    run_id: str = response.json()["run_id"]
    return run_id


def assert_no_server_errors(api: ApiHarness) -> None:
    """No request of the test got a 5xx (the API counts every answer by status)."""
    metrics = http_request(api.metrics_url).body.decode()
    errors = [
        line
        for line in metrics.splitlines()
        if line.startswith("consensus_api_requests_total{") and 'status="5' in line
    ]
    assert not errors, errors


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def skipped_by(worker: WorkerProcess, run_id: str) -> bool:
    return any(
        e["lifecycle_event"] == "idempotent_skip" and e.get("run_id") == run_id
        for e in worker.events()
    )


def generations(api: ApiHarness) -> list[dict[str, Any]]:
    """The LLM requests the offline server answered or failed, oldest first."""
    recent: list[dict[str, Any]] = api.stack.llm.stats()["recent"]
    return recent


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    id: str | None


class EventStream:
    """A Server-Sent Events client on urllib, reading one event at a time."""

    def __init__(self, api: ApiHarness, run_id: str, *, key: str | None = None) -> None:
        request = urllib.request.Request(
            f"{api.base_url}/v1/runs/{run_id}/events",
            headers={
                "Authorization": f"Bearer {key or api.keys['acme']}",
                "Accept": "text/event-stream",
            },
        )
        self.response = urllib.request.urlopen(request, timeout=60)

    def read(self) -> Event | str | None:
        """The next event or comment line, or ``None`` when the server closed the stream."""
        name, data, ident = "message", "", None
        for raw in self.response:
            line: str = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    payload: dict[str, Any] = json.loads(data)
                    return Event(name, payload, ident)
                continue
            if line.startswith(":"):
                return line[1:].strip()
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data += value
            elif field == "id":
                ident = value
        return None

    def next(self) -> Event | None:
        """The next event, skipping comments."""
        while isinstance(item := self.read(), str):
            pass
        return item

    def rest(self) -> list[Event]:
        events = []
        while (event := self.next()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        self.response.close()


@pytest.fixture
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The API runs in this process, so its stream's heartbeat period can be shortened."""
    monkeypatch.setattr(events_routes, "HEARTBEAT_SECONDS", 0.3)
    yield


# -- authentication, validation, isolation ------------------------------------------------------

RUN = str(uuid.uuid4())
OTHER = str(uuid.uuid4())
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "/v1/runs", {"idea": IDEA}),
    ("POST", "/v1/full-review", {"idea": IDEA}),
    ("GET", "/v1/runs", None),
    ("GET", f"/v1/runs/{RUN}", None),
    ("GET", f"/v1/runs/{RUN}/events", None),
    ("POST", f"/v1/runs/{RUN}/revisions", {"edit_notes": "shorter"}),
    ("GET", f"/v1/runs/{RUN}/diff/{OTHER}", None),
    ("POST", f"/v1/runs/{RUN}/cancel", None),
    ("POST", f"/v1/runs/{RUN}/retry", None),
]


def test_every_endpoint_needs_a_valid_key(api: ApiHarness) -> None:
    for method, path, body in ENDPOINTS:
        for key in (None, "ce_not-a-key", api.keys["acme"] + "x"):
            client = api.anonymous if key is None else ApiClient(api.base_url, key)
            response = client.request(method, path, body)
            envelope(response, 401, "UNAUTHORIZED")
            assert header(response, "www-authenticate") == "Bearer", (method, path)
    assert_no_server_errors(api)


def test_invalid_requests_get_the_envelope(api: ApiHarness) -> None:
    acme = api.acme
    own = envelope(
        acme.post("/v1/runs", {"idea": "   "}, headers={"X-Request-ID": "client-chosen-42"}),
        422,
        "VALIDATION_ERROR",
    )
    assert own["request_id"] == "client-chosen-42"
    assert own["details"][0]["loc"] == ["body", "idea"]
    too_long = "x" * (api.settings.max_idea_length + 1)
    assert "limit" in envelope(acme.post("/v1/runs", {"idea": too_long}), 422)["message"]
    invalid_bodies: list[dict[str, Any]] = [
        {"idea": IDEA, "extra_context": ["a", "list"]},
        {"idea": IDEA, "extra_context": "c" * (api.settings.max_extra_context_length + 1)},
        {"idea": IDEA, "personas": ["architect", "nobody"]},
        {"idea": IDEA, "personas": []},
        {"idea": IDEA, "review_temperature": 2.5},
        {"idea": IDEA, "expand_model": ""},
        {"idea": IDEA, "priority": "urgent"},
        {"idea": IDEA, "priorty": "high"},  # misspelt options are refused, not ignored
        {"idea": "a\u0000b"},  # PostgreSQL cannot store NUL: refused, not a 500
        {"idea": IDEA, "extra_context": {"k": ["\u0000"]}},
        {"idea": IDEA, "review_model": "no spaces please"},
        {},
    ]
    for body in invalid_bodies:
        envelope(acme.post("/v1/runs", body), 422, "VALIDATION_ERROR")
    envelope(acme.post("/v1/runs", raw=b"{not json"), 422, "VALIDATION_ERROR")
    envelope(
        acme.post("/v1/runs", {"idea": IDEA}, headers={"Idempotency-Key": "k" * 201}),
        422,
        "VALIDATION_ERROR",
    )
    for path in ("/v1/runs/not-a-uuid", "/v1/runs/123/events", f"/v1/runs/{RUN}/diff/nope"):
        details = envelope(acme.get(path), 422, "VALIDATION_ERROR")["details"]
        assert details[0]["loc"][0] == "path"
    for query in (
        {"created_after": "2024-01-01T00:00:00"},  # no time zone
        {"created_before": "yesterday"},
        {"created_after": "0001-01-01T00:00:00+01:00"},  # before UTC's year 1
        {"min_confidence": "1.5"},
        {"limit": "0"},
        {"limit": "101"},
        {"status": "sleeping"},
        {"decision": "maybe"},
        {"parent_run_id": "x"},
    ):
        envelope(acme.get("/v1/runs?" + urllib.parse.urlencode(query)), 422)
    for cursor in ("garbage!", "bm90IGpzb24", "WyIyMDI0LTAxLTAxVDAwOjAwOjAwIiwieCJd"):
        envelope(acme.get(f"/v1/runs?cursor={cursor}"), 400, "INVALID_CURSOR")
    envelope(acme.get(f"/v1/runs/{RUN}/diff/{RUN}"), 400, "SAME_RUN")
    for path in (f"/v1/runs/{RUN}", f"/v1/runs/{RUN}/events", f"/v1/runs/{RUN}/diff/{OTHER}"):
        envelope(acme.get(path), 404, "NOT_FOUND")
    for path in (f"/v1/runs/{RUN}/cancel", f"/v1/runs/{RUN}/retry"):
        envelope(acme.post(path), 404, "NOT_FOUND")
    envelope(acme.post(f"/v1/runs/{RUN}/revisions", {"edit_notes": "x"}), 404, "NOT_FOUND")
    assert_no_server_errors(api)


def test_submit_stores_the_run_and_enqueues_it(make_api: ApiFactory) -> None:
    api = make_api(env=CATALOGUE)
    body = {
        "idea": f"  {IDEA}  ",
        "extra_context": "Two shops in Leeds, 40 repairs a week.",
        "priority": "high",
        "personas": ["security_guardian", "architect"],
        "expand_model": "gpt-4.1",
        "expand_temperature": 0.3,
        "review_temperature": 0,
    }
    response = api.acme.post("/v1/runs", body)
    assert response.status == 202, response.body
    accepted = response.json()
    run_id = accepted["run_id"]
    assert header(response, "location") == f"/v1/runs/{run_id}"
    assert accepted["status"] == "queued" and accepted["run_type"] == "initial"
    assert accepted["priority"] == "high" and accepted["enqueued"] is True
    assert accepted["links"] == {
        "self": f"/v1/runs/{run_id}",
        "events": f"/v1/runs/{run_id}/events",
    }
    assert datetime.fromisoformat(accepted["created_at"]).tzinfo is not None
    with api.stack.sessions() as session:
        stored = session.get_one(Run, uuid.UUID(run_id))
        assert stored.tenant == "acme" and stored.last_enqueued_at is not None

    detail = api.acme.get(f"/v1/runs/{run_id}").json()
    assert detail["idea"] == IDEA
    assert detail["extra_context"] == body["extra_context"]
    assert detail["models"] == {
        "expand_model": "gpt-4.1",
        "expand_temperature": 0.3,
        "review_model": api.settings.review_model,
        "review_temperature": 0.0,
        "review_rounds": 1,
        "chair_model": None,
        "chair_fallback_model": None,
    }
    # The chosen personas, in the configured order, weights rescaled to sum to 1.
    assert [p["id"] for p in detail["personas"]] == ["architect", "security_guardian"]
    assert sum(p["weight"] for p in detail["personas"]) == pytest.approx(1.0)
    assert [s["step_name"] for s in detail["steps"]] == [
        "expand",
        "review_architect",
        "review_security_guardian",
        "aggregate",
    ]
    assert {s["status"] for s in detail["steps"]} == {"pending"}
    assert detail["steps"][1]["persona_id"] == "architect"
    assert (detail["proposal"], detail["reviews"], detail["decision"]) == (None, [], None)
    assert detail["usage"]["llm_calls"] == 0 and detail["error"] is None

    # The earlier system's path is the same handler; an object is fine as context too.
    old_path = api.acme.post("/v1/full-review", {"idea": IDEA, "extra_context": {"shops": 2}})
    assert old_path.status == 202 and old_path.json()["priority"] == "normal"
    again = api.acme.get(f"/v1/runs/{old_path.json()['run_id']}").json()
    assert again["extra_context"] == {"shops": 2}
    assert len(again["personas"]) == len(PERSONA_IDS)
    assert_no_server_errors(api)


def test_a_tenant_cannot_see_or_touch_another_tenants_runs(api: ApiHarness) -> None:
    theirs = submit(api.acme)
    mine = submit(api.globex)
    globex = api.globex
    envelope(globex.get(f"/v1/runs/{theirs}"), 404, "NOT_FOUND")
    envelope(globex.get(f"/v1/runs/{theirs}/events"), 404, "NOT_FOUND")
    envelope(globex.post(f"/v1/runs/{theirs}/revisions", {"edit_notes": "x"}), 404)
    envelope(globex.get(f"/v1/runs/{theirs}/diff/{mine}"), 404)
    envelope(globex.get(f"/v1/runs/{mine}/diff/{theirs}"), 404)
    envelope(globex.post(f"/v1/runs/{theirs}/cancel"), 404)
    envelope(globex.post(f"/v1/runs/{theirs}/retry"), 404)
    listed = globex.get("/v1/runs").json()["runs"]
    assert [r["run_id"] for r in listed] == [mine]
    # Nothing happened to acme's run, which acme still sees.
    acme_view = api.acme.get(f"/v1/runs/{theirs}")
    assert acme_view.status == 200 and acme_view.json()["status"] == "queued"
    assert [r["run_id"] for r in api.acme.get("/v1/runs").json()["runs"]] == [theirs]
    assert_no_server_errors(api)


def test_an_idempotency_key_returns_the_same_run(api: ApiHarness) -> None:
    key = {"Idempotency-Key": "order-7781"}
    first = api.acme.post("/v1/runs", {"idea": IDEA}, headers=key)
    assert first.status == 202, first.body
    # Spelling out a default is the same request.
    replay = api.acme.post("/v1/runs", {"idea": IDEA, "priority": "normal"}, headers=key)
    assert replay.status == 200, replay.body
    assert header(replay, "idempotent-replayed") == "true"
    assert replay.json()["run_id"] == first.json()["run_id"]
    assert replay.json()["enqueued"] is True
    assert header(replay, "location") == f"/v1/runs/{first.json()['run_id']}"
    conflict = envelope(
        api.acme.post("/v1/runs", {"idea": IDEA + " Also vans."}, headers=key), 409, "CONFLICT"
    )
    assert conflict["details"]["run_id"] == first.json()["run_id"]
    # Keys are per tenant: globex's identical key is its own, new run.
    other = api.globex.post("/v1/runs", {"idea": IDEA}, headers=key)
    assert other.status == 202 and other.json()["run_id"] != first.json()["run_id"]
    assert len(api.acme.get("/v1/runs").json()["runs"]) == 1
    assert_no_server_errors(api)


def test_a_tenant_has_a_cap_on_runs_in_flight(make_api: ApiFactory) -> None:
    api = make_api(api={"API_MAX_RUNS_IN_FLIGHT": 2})
    first = submit(api.acme)
    submit(api.acme)
    refused = envelope(api.acme.post("/v1/runs", {"idea": IDEA}), 429, "TOO_MANY_RUNS_IN_FLIGHT")
    assert refused["details"] == {"in_flight": 2, "limit": 2}
    submit(api.globex)  # another tenant has its own cap
    assert api.acme.post(f"/v1/runs/{first}/cancel").status == 200
    submit(api.acme)  # a cancelled run no longer counts
    assert len(api.acme.get("/v1/runs").json()["runs"]) == 3
    assert_no_server_errors(api)


def test_list_filters_and_pages_with_a_stable_cursor(api: ApiHarness) -> None:
    created = [submit(api.acme, {"idea": f"{IDEA} Variant {n}."}) for n in range(5)]
    cancelled = created[1]
    assert api.acme.post(f"/v1/runs/{cancelled}/cancel").status == 200
    submit(api.globex)

    def page(**query: Any) -> dict[str, Any]:
        response = api.acme.get("/v1/runs?" + urllib.parse.urlencode(query))
        assert response.status == 200, response.body
        body: dict[str, Any] = response.json()
        return body

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        body = page(limit=2, **({"cursor": cursor} if cursor else {}))
        pages += 1
        assert body["limit"] == 2 and len(body["runs"]) <= 2
        seen += body["runs"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    ids = [r["run_id"] for r in seen]
    assert sorted(ids) == sorted(created) and len(set(ids)) == 5
    keys = [(r["created_at"], r["run_id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)
    assert ids == [r["run_id"] for r in page(limit=100)["runs"]]  # same order unpaged
    item = seen[0]
    assert set(item) == {
        "run_id", "status", "run_type", "priority", "parent_run_id", "created_at",
        "queued_at", "started_at", "completed_at", "decision", "overall_score",
        "proposal_title", "proposal_summary", "idea_preview",
    }  # fmt: skip

    assert [r["run_id"] for r in page(status="cancelled")["runs"]] == [cancelled]
    assert len(page(status="queued")["runs"]) == 4
    assert len(page(run_type="initial")["runs"]) == 5
    assert page(run_type="revision")["runs"] == []
    assert page(parent_run_id=created[0])["runs"] == []
    assert page(decision="approve")["runs"] == []
    assert page(min_confidence=0)["runs"] == []  # runs without a score are left out
    middle = next(r for r in seen if r["run_id"] == created[2])["created_at"]
    after = page(created_after=middle)["runs"]
    assert [r["run_id"] for r in after] == list(reversed(created[2:]))  # inclusive
    before = page(created_before=middle)["runs"]
    assert [r["run_id"] for r in before] == list(reversed(created[:3]))
    other_zone = datetime.fromisoformat(middle).astimezone().isoformat()
    assert page(created_after=other_zone)["runs"] == after
    assert_no_server_errors(api)


def test_cancel_a_queued_run_while_following_it(api: ApiHarness, fast_heartbeat: None) -> None:
    run_id = submit(api.acme)
    stream = EventStream(api, run_id)
    try:
        snapshot = stream.next()
        assert snapshot is not None and snapshot.name == "snapshot"
        assert snapshot.data["status"] == "queued" and snapshot.data["run_id"] == run_id
        assert [s["status"] for s in snapshot.data["steps"]] == ["pending"] * 7
        assert stream.read() == "heartbeat"  # nothing changes: only heartbeats

        cancelled = api.acme.post(f"/v1/runs/{run_id}/cancel")
        assert cancelled.status == 200, cancelled.body
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["error_code"] == "cancelled"
        events = stream.rest()
    finally:
        stream.close()
    names = [e.name for e in events]
    assert names[-2:] == ["status", "end"], names
    assert {e.data["status"] for e in events if e.name == "step"} == {"skipped"}
    assert events[-1].data["status"] == "cancelled"
    assert [int(e.id or 0) for e in events] == sorted(int(e.id or 0) for e in events)

    envelope(api.acme.post(f"/v1/runs/{run_id}/cancel"), 409, "CONFLICT")
    envelope(api.acme.post(f"/v1/runs/{run_id}/retry"), 409, "CONFLICT")
    envelope(api.acme.post(f"/v1/runs/{run_id}/revisions", {"edit_notes": "x"}), 409)
    detail = api.acme.get(f"/v1/runs/{run_id}").json()
    assert detail["error"] == {"code": "cancelled", "message": "cancelled by the user"}
    # A terminal run's stream is its snapshot and its end.
    done = EventStream(api, run_id)
    try:
        assert [e.name for e in [done.next(), *done.rest()] if e] == ["snapshot", "end"]
    finally:
        done.close()
    assert_no_server_errors(api)


def test_a_failed_publish_keeps_the_run_for_the_sweeper(make_api: ApiFactory) -> None:
    # The API publishes to a topic that does not exist and may not create it: the
    # publish raises, as it would when Pub/Sub is unreachable or misconfigured.
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    api = make_api(api={"PUBSUB_TOPIC": missing, "PUBSUB_AUTO_CREATE": False})
    response = api.acme.post("/v1/runs", {"idea": IDEA})
    assert response.status == 202, response.body
    accepted = response.json()
    assert accepted["enqueued"] is False
    assert "sweeper" in accepted["message"] and "not sent" in accepted["message"]
    run_id = accepted["run_id"]
    assert api.acme.get(f"/v1/runs/{run_id}").json()["status"] == "queued"
    # A worker on the real queues: its sweeper sends what the API could not.
    api.stack.start_worker()
    run = api.stack.wait_for(uuid.UUID(run_id))
    assert run.status.value == "completed", run.error
    assert run.last_enqueued_at is not None
    assert_no_server_errors(api)


# -- with a worker ------------------------------------------------------------------------------


def test_follow_a_run_to_its_decision_and_read_everything(make_api: ApiFactory) -> None:
    # Slow enough answers that the stream, reading every 0.25 s, sees the run running.
    api = make_api(latency_ms=300)
    cancelled = submit(api.acme)
    assert api.acme.post(f"/v1/runs/{cancelled}/cancel").status == 200
    run_id = submit(api.acme)
    stream = EventStream(api, run_id)
    try:
        snapshot = stream.next()
        assert snapshot is not None and snapshot.name == "snapshot"
        assert snapshot.data["status"] == "queued"
        worker = api.stack.start_worker()
        events = stream.rest()
    finally:
        stream.close()

    names = [e.name for e in events]
    assert names[-1] == "end" and names.count("end") == 1, names
    statuses = [e.data["status"] for e in events if e.name == "status"]
    assert statuses == ["running", "completed"], names
    steps = [e.data for e in events if e.name == "step"]
    final = {s["step_name"]: s for s in steps}
    assert set(final) == {"expand", *(f"review_{p}" for p in PERSONA_IDS), "aggregate"}
    assert all(s["status"] == "completed" and s["attempts"] == 1 for s in final.values())
    # Each step is seen to finish after it started; expand ends before any review does.
    order = [(s["step_name"], s["status"]) for s in steps]
    assert order.index(("expand", "completed")) < min(
        order.index((f"review_{p}", "completed")) for p in PERSONA_IDS
    )
    end = events[-1].data
    assert end["status"] == "completed" and end["decision"] in {"approve", "revise", "reject"}

    detail = api.acme.get(f"/v1/runs/{run_id}").json()
    assert detail["status"] == "completed" and detail["error"] is None
    assert detail["decision"]["decision"] == end["decision"]
    assert detail["decision"]["overall_weighted_confidence"] == pytest.approx(end["overall_score"])
    assert set(detail["decision"]["score_breakdown"]["weights"]) == set(PERSONA_IDS)
    assert isinstance(detail["decision"]["minority_reports"], list)
    assert detail["proposal"]["source"] == "expanded" and detail["proposal"]["proposal"]["title"]
    assert [r["persona_id"] for r in detail["reviews"]] == PERSONA_IDS
    for review in detail["reviews"]:
        assert review["strengths"] and review["recommendations"] and review["estimated_effort"]
        assert isinstance(review["concerns"], list) and isinstance(review["blocking_issues"], list)
        assert isinstance(review["dependency_risks"], list) and review["summary"]
        assert review["reused"] is False and review["source_run_id"] is None
        assert review["model"] == api.settings.review_model
    assert [s["step_name"] for s in detail["steps"]] == [
        "expand",
        *(f"review_{p}" for p in PERSONA_IDS),
        "aggregate",
    ]
    assert all(s["status"] == "completed" and s["started_at"] for s in detail["steps"])
    usage = detail["usage"]
    assert usage["llm_calls"] == 6 and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["cost_usd"] > 0
    assert {s["step"] for s in usage["by_step"]} == {
        "expand",
        *(f"review_{p}" for p in PERSONA_IDS),
    }
    assert sum(s["cost_usd"] for s in usage["by_step"]) == pytest.approx(usage["cost_usd"])
    listed = api.acme.get(f"/v1/runs?decision={end['decision']}").json()["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert listed[0]["proposal_title"] == detail["proposal"]["proposal"]["title"]
    assert listed[0]["overall_score"] == pytest.approx(end["overall_score"])

    # The run cancelled before the worker started was delivered to it and not run.
    wait_until(lambda: skipped_by(worker, cancelled), "the worker to skip the cancelled run")
    untouched = api.acme.get(f"/v1/runs/{cancelled}").json()
    assert untouched["status"] == "cancelled" and untouched["usage"]["llm_calls"] == 0
    assert {s["attempts"] for s in untouched["steps"]} == {0}
    assert_no_server_errors(api)


def test_revise_diff_and_retry_with_a_worker(make_api: ApiFactory) -> None:
    api = make_api(env=CATALOGUE)
    api.stack.start_worker()
    parent = submit(api.acme)
    api.stack.wait_for(uuid.UUID(parent))
    envelope(api.acme.post(f"/v1/runs/{parent}/retry"), 409, "CONFLICT")  # not failed
    envelope(api.acme.post(f"/v1/runs/{parent}/cancel"), 409, "CONFLICT")  # already ended
    invalid: list[dict[str, Any]] = [
        {},  # nothing to change
        {"rerun_personas": []},
        {"edit_notes": "   "},
        {"edit_notes": "drop\u0000this"},
        {"edited_proposal": {"headline": "x"}},  # no such section
        {"edited_proposal": '{"headline": "x"}'},
        {"edited_proposal": {"assumptions": "not a list"}},
        {"edited_proposal": "{broken json"},
        {"rerun_personas": ["nobody"]},
        {"edit_notes": "n" * (api.settings.max_edit_notes_length + 1)},
        {"edited_proposal": "p" * (api.settings.max_edited_proposal_length + 1)},
    ]
    for bad in invalid:
        envelope(api.acme.post(f"/v1/runs/{parent}/revisions", bad), 422, "VALIDATION_ERROR")

    # Direct edits only: the plan is exact, and the overridden review model is used.
    before = len(generations(api))
    response = api.acme.post(
        f"/v1/runs/{parent}/revisions",
        {
            "edited_proposal": {"summary": "Online booking for bike repairs, with SMS."},
            "review_model": OVERRIDE_MODEL,
            "review_temperature": 0.5,
        },
    )
    assert response.status == 202, response.body
    accepted = response.json()
    revision = accepted["run_id"]
    assert header(response, "location") == f"/v1/runs/{revision}"
    assert accepted["run_type"] == "revision" and accepted["parent_run_id"] == parent
    plan = accepted["plan"]
    assert plan["exact"] is True and plan["basis"] == "direct_edits"
    assert "critic" in plan["rerun"]  # the critic reviews every section
    assert sorted(plan["rerun"] + plan["reused"]) == sorted(PERSONA_IDS)
    assert set(plan["reasons"]) == set(PERSONA_IDS)
    done = api.stack.wait_for(uuid.UUID(revision))
    assert done.status.value == "completed", done.error

    detail = api.acme.get(f"/v1/runs/{revision}").json()
    assert detail["parent_run_id"] == parent
    assert detail["models"]["review_model"] == OVERRIDE_MODEL
    assert detail["models"]["review_temperature"] == 0.5
    assert detail["revision"]["plan"]["rerun"] == plan["rerun"]  # what the worker did
    assert detail["revision"]["plan"]["reused"] == plan["reused"]
    assert detail["proposal"]["source"] == "edited"
    assert list(detail["proposal"]["diff"]["changed_fields"]) == ["summary"]
    reviews = {r["persona_id"]: r for r in detail["reviews"]}
    for persona_id in plan["reused"]:
        assert reviews[persona_id]["reused"] and reviews[persona_id]["source_run_id"] == parent
        step = next(s for s in detail["steps"] if s["persona_id"] == persona_id)
        assert step["reused"] is True and step["attempts"] == 0
    for persona_id in plan["rerun"]:
        assert not reviews[persona_id]["reused"]
        assert reviews[persona_id]["temperature"] == 0.5
    sent = generations(api)[before:]
    assert len(sent) == len(plan["rerun"])  # no expand call: the edits need no model
    assert {(g["model"], g["temperature"]) for g in sent} == {(OVERRIDE_MODEL, 0.5)}
    children = api.acme.get(f"/v1/runs?parent_run_id={parent}").json()["runs"]
    assert [r["run_id"] for r in children] == [revision]
    assert [r["run_id"] for r in api.acme.get("/v1/runs?run_type=revision").json()["runs"]] == [
        revision
    ]

    diff = api.acme.get(f"/v1/runs/{parent}/diff/{revision}")
    assert diff.status == 200, diff.body
    compared = diff.json()
    assert compared["metadata"]["relationship"] == "run1_is_parent_of_run2"
    changes = compared["proposal_changes"]
    assert changes["summary"]["status"] == "modified" and changes["summary"]["diff"]
    assert {k for k, v in changes.items() if v["status"] != "unchanged"} == {"summary"}
    deltas = {d["persona_id"]: d for d in compared["persona_deltas"]}
    assert set(deltas) == set(PERSONA_IDS)
    assert all(deltas[p]["confidence_delta"] == 0 for p in plan["reused"])
    backwards = api.acme.get(f"/v1/runs/{revision}/diff/{parent}").json()
    assert backwards["metadata"]["relationship"] == "run2_is_parent_of_run1"

    # With edit notes the model rewrites the proposal at expand time: a lower bound.
    noted = api.acme.post(
        f"/v1/runs/{revision}/revisions",
        {"edit_notes": "Say how customers pay."},
        headers={"Idempotency-Key": "notes-1"},
    )
    assert noted.status == 202, noted.body
    assert noted.json()["plan"]["exact"] is False
    assert noted.json()["plan"]["basis"] == "direct_edits_then_notes"
    replay = api.acme.post(
        f"/v1/runs/{revision}/revisions",
        {"edit_notes": "Say how customers pay."},
        headers={"Idempotency-Key": "notes-1"},
    )
    assert replay.status == 200 and replay.json()["run_id"] == noted.json()["run_id"]
    api.stack.wait_for(uuid.UUID(noted.json()["run_id"]))

    # Retry: the one review this revision asks for is refused by the LLM (401, not
    # retried), so the quorum of every persona is not met and the run fails.
    api.stack.llm.push_faults("401")
    failing = api.acme.post(f"/v1/runs/{parent}/revisions", {"rerun_personas": ["critic"]})
    assert failing.status == 202, failing.body
    assert failing.json()["plan"]["rerun"] == ["critic"]
    failed_id = failing.json()["run_id"]
    failed = api.stack.wait_for(uuid.UUID(failed_id))
    assert failed.status.value == "failed" and failed.error_code == "quorum_not_met"
    failed_detail = api.acme.get(f"/v1/runs/{failed_id}").json()
    assert failed_detail["error"]["code"] == "quorum_not_met"
    critic = next(s for s in failed_detail["steps"] if s["persona_id"] == "critic")
    assert critic["status"] == "failed" and critic["error"]

    requests_before = api.stack.llm.stats()["total"]
    retried = api.acme.post(f"/v1/runs/{failed_id}/retry")
    assert retried.status == 202, retried.body
    assert retried.json()["steps"] == ["review_critic", "aggregate"]
    assert retried.json()["status"] == "queued" and retried.json()["enqueued"] is True
    again = api.stack.wait_for(uuid.UUID(failed_id))
    assert again.status.value == "completed", again.error
    assert api.stack.llm.stats()["total"] == requests_before + 1  # the critic alone
    steps = {s.step_name: s for s in again.steps}
    assert steps["expand"].attempts == 1 and steps["review_critic"].attempts == 2
    assert all(steps[f"review_{p}"].attempts == 0 for p in PERSONA_IDS if p != "critic")
    assert api.acme.get(f"/v1/runs/{failed_id}").json()["error"] is None
    assert_no_server_errors(api)


def test_list_searches_the_idea_and_the_title(api: ApiHarness) -> None:
    solar = submit(api.acme, {"idea": f"{IDEA} Put SOLAR panels on the depot roof."})
    percent = submit(api.acme, {"idea": f"{IDEA} Cut idle time by 50% at the depot."})
    titled = submit(api.acme)
    submit(api.globex, {"idea": f"{IDEA} Solar for globex."})
    with api.stack.sessions() as session:
        session.add(
            ProposalVersion(
                run_id=uuid.UUID(titled),
                proposal={"title": "Heat pumps for the workshop"},
                source=ProposalSource.EXPANDED,
            )
        )
        session.commit()

    def found(q: str) -> list[str]:
        response = api.acme.get("/v1/runs?" + urllib.parse.urlencode({"q": q}))
        assert response.status == 200, response.body
        return [run["run_id"] for run in response.json()["runs"]]

    assert found("solar") == [solar]  # any case; another tenant's run is not found
    assert found("  Solar Panels ") == [solar]
    assert found("HEAT PUMP") == [titled]  # the proposal's title
    assert found("50%") == [percent]  # % is a character, not a wildcard
    assert found("5_%") == []
    assert len(found("   ")) == 3  # blank: no search
    refused = envelope(api.acme.get("/v1/runs?q=solar%00"), 422, "VALIDATION_ERROR")
    assert refused["details"][0]["loc"] == ["query", "q"]
    assert_no_server_errors(api)
