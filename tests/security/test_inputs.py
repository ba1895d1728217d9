"""Input that PostgreSQL cannot store, or that is built to exhaust the server, is refused at
the edge with a 422 that names the field, over HTTP against the real API."""

from __future__ import annotations

import json
import uuid
from typing import Any

from consensus_engine.devtools.loopback import Response

from .conftest import ApiFactory

IDEA = "Let people book a bike repair slot online and get a text when it is ready."


def refused(response: Response, field: str) -> None:
    assert response.status == 422, response.body
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert [d["loc"] for d in body["details"]] == [["body", field]], body


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"k": value}
    return value


def test_deeply_nested_context_is_refused_not_a_server_error(make_api: ApiFactory) -> None:
    api = make_api()
    refused(
        api.acme.post("/v1/runs", {"idea": IDEA, "extra_context": nested(900)}), "extra_context"
    )
    refused(api.acme.post("/v1/runs", {"idea": IDEA, "extra_context": nested(40)}), "extra_context")
    for path in ("/v1/expand-idea", "/v1/review-idea"):
        refused(api.acme.post(path, {"idea": IDEA, "extra_context": nested(900)}), "extra_context")
    shallow = api.acme.post("/v1/runs", {"idea": IDEA, "extra_context": nested(8)})
    assert shallow.status == 202, shallow.body


def test_text_smuggled_inside_a_json_string_is_checked_after_parsing(
    make_api: ApiFactory,
) -> None:
    api = make_api()
    api.stack.start_worker()
    submitted = api.acme.post("/v1/runs", {"idea": IDEA})
    assert submitted.status == 202, submitted.body
    parent = submitted.json()["run_id"]
    done = api.stack.wait_for(uuid.UUID(parent))
    assert done.status.value == "completed", done.error

    # Valid JSON text whose parsed value holds what PostgreSQL refuses to store.
    for smuggled in ('{"summary": "a\\u0000b"}', '{"summary": "a\\ud800b"}'):
        response = api.acme.post(f"/v1/runs/{parent}/revisions", {"edited_proposal": smuggled})
        refused(response, "edited_proposal")
    deep = json.dumps({"summary": "s", "assumptions": [nested(900)]})
    refused(
        api.acme.post(f"/v1/runs/{parent}/revisions", {"edited_proposal": deep}), "edited_proposal"
    )
    assert [r["run_id"] for r in api.acme.get("/v1/runs").json()["runs"]] == [parent]
