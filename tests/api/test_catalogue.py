"""The model catalogue at the API's edge and in the recorded costs, over real HTTP: a run or
revision naming a model outside it is refused before anything is stored; a priced model's
calls cost money, a free one's nothing. Real API, PostgreSQL, emulator, offline LLM, worker."""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa

from consensus_engine.db.models import LlmCall, Run
from consensus_engine.devtools.loopback import Response

from .conftest import ApiFactory, ApiHarness

IDEA = "Let people book a bike repair slot online and get a text when it is ready."
FREE = "local-model"
CATALOGUE = {"gpt-4.1-mini": {}, FREE: {"free": True, "rpm": 120}}
ALLOWED = sorted(CATALOGUE)


def run_count(api: ApiHarness) -> int:
    with api.stack.sessions() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Run)) or 0


def assert_unknown_model(response: Response, field: str) -> None:
    assert response.status == 422, response.body
    body: dict[str, Any] = response.json()
    assert body["code"] == "UNKNOWN_MODEL", body
    assert "o1-pro" not in body["message"]  # the client's value is never echoed
    assert all(model in body["message"] for model in ALLOWED)
    (detail,) = body["details"]
    assert detail["loc"] == ["body", field] and detail["allowed"] == ALLOWED


def test_models_outside_the_catalogue_are_refused_and_priced_ones_cost(
    make_api: ApiFactory,
) -> None:
    api = make_api(env={"MODEL_CATALOGUE_JSON": json.dumps(CATALOGUE)})
    before = run_count(api)

    for path, field in (("/v1/runs", "expand_model"), ("/v1/full-review", "review_model")):
        body = {"idea": IDEA, field: "o1-pro"}
        assert_unknown_model(api.acme.post(path, body, headers={"Idempotency-Key": "k1"}), field)
    assert run_count(api) == before

    api.stack.start_worker()
    response = api.acme.post("/v1/runs", {"idea": IDEA, "review_model": FREE})
    assert response.status == 202, response.body
    parent = response.json()["run_id"]
    assert api.stack.wait_for(uuid.UUID(parent)).status.value == "completed"
    with api.stack.sessions() as session:
        calls = session.scalars(sa.select(LlmCall).where(LlmCall.run_id == uuid.UUID(parent)))
        costs = {(call.model, call.cost_usd > 0) for call in calls}
    assert costs == {("gpt-4.1-mini", True), (FREE, False)}

    stored = run_count(api)
    for field in ("expand_model", "review_model"):
        revision = {"edit_notes": "Add SMS reminders.", field: "o1-pro"}
        assert_unknown_model(api.acme.post(f"/v1/runs/{parent}/revisions", revision), field)
    assert run_count(api) == stored
