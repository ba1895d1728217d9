"""What a tenant reads about a run names its personas, but never their instructions (the
system prompts of the review), over HTTP against the real API."""

from __future__ import annotations

from consensus_engine.domain.personas import DEFAULT_PERSONAS

from .conftest import ApiFactory

IDEA = "Let people book a bike repair slot online and get a text when it is ready."


def test_run_details_show_personas_without_their_instructions(make_api: ApiFactory) -> None:
    api = make_api()
    submitted = api.acme.post("/v1/runs", {"idea": IDEA})
    assert submitted.status == 202, submitted.body
    response = api.acme.get(f"/v1/runs/{submitted.json()['run_id']}")
    assert response.status == 200, response.body

    personas = response.json()["personas"]
    assert [p["id"] for p in personas] == list(DEFAULT_PERSONAS.ids)
    assert all(set(p) == {"id", "name", "weight", "focus", "model"} for p in personas), personas
    text = response.body.decode()
    for persona in DEFAULT_PERSONAS:
        assert persona.instructions not in text
