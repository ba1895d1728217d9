"""Asking for a council over HTTP: per-persona models, review rounds and the chair, checked
at the door and stored with the run (no worker: what is stored is what a worker will do)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from consensus_engine.db.models import Run, StepProgress
from consensus_engine.domain.runs import RunStatus, StepStatus

from .conftest import ApiFactory, ApiHarness
from .test_runs import envelope

IDEA = "Lend garden tools between neighbours, with a shared calendar."
CATALOGUE = json.dumps({"model-a": {"free": True}, "model-b": {"free": True}})
MODELS = {"EXPAND_MODEL": "model-a", "REVIEW_MODEL": "model-a", "MODEL_CATALOGUE_JSON": CATALOGUE}


def council_api(make_api: ApiFactory, **settings: str) -> ApiHarness:
    return make_api(env=MODELS | settings)


def submitted(api: ApiHarness, **body: Any) -> dict[str, Any]:
    response = api.acme.post("/v1/runs", {"idea": IDEA, **body})
    assert response.status == 202, response.body
    detail: dict[str, Any] = api.acme.get(f"/v1/runs/{response.json()['run_id']}").json()
    return detail


def test_a_run_stores_its_persona_models_rounds_and_chair(make_api: ApiFactory) -> None:
    api = council_api(make_api)

    detail = submitted(
        api,
        personas=["architect", "critic"],
        persona_models={"critic": "model-b"},
        review_rounds=2,
        chair_model="model-b",
    )

    assert [(p["id"], p["model"]) for p in detail["personas"]] == [
        ("architect", None),
        ("critic", "model-b"),
    ]
    assert detail["models"]["review_rounds"] == 2
    assert detail["models"]["chair_model"] == "model-b"
    assert [s["step_name"] for s in detail["steps"]] == [
        "expand",
        "review_architect",
        "review_critic",
        "debate_architect",
        "debate_critic",
        "aggregate",
        "chair",
    ]
    assert [s["persona_id"] for s in detail["steps"]][3:5] == ["architect", "critic"]
    assert detail["chair"] | {"model_written": True} == {
        "status": "pending",
        "model": "model-b",
        "provider": None,
        "fallback": False,
        "model_written": True,
        "report": None,
        "error": None,
    }


def test_the_deployment_s_council_is_the_default_and_a_run_may_decline_the_chair(
    make_api: ApiFactory,
) -> None:
    api = council_api(make_api, REVIEW_ROUNDS="2", CHAIR_MODEL="model-b")

    default = submitted(api, personas=["architect"])
    declined = submitted(api, personas=["architect"], chair=False, review_rounds=1)

    assert default["models"]["review_rounds"] == 2 and default["chair"]["model"] == "model-b"
    steps = [s["step_name"] for s in declined["steps"]]
    assert steps == ["expand", "review_architect", "aggregate"]
    assert declined["chair"] is None


def test_a_run_wide_review_model_gives_way_to_a_persona_s_own(make_api: ApiFactory) -> None:
    api = council_api(make_api)

    detail = submitted(
        api,
        personas=["architect", "critic"],
        review_model="model-b",
        persona_models={"architect": "model-a"},
    )

    assert [p["model"] for p in detail["personas"]] == ["model-a", "model-b"]


def refused(api: ApiHarness, body: dict[str, Any], code: str) -> dict[str, Any]:
    return envelope(api.acme.post("/v1/runs", {"idea": IDEA, **body}), 422, code)


def test_models_outside_the_catalogue_and_impossible_councils_are_refused(
    make_api: ApiFactory,
) -> None:
    api = council_api(make_api)

    error = refused(api, {"persona_models": {"critic": "gpt-unknown"}}, "UNKNOWN_MODEL")
    assert error["details"][0]["loc"] == ["body", "persona_models", "critic"]
    assert error["details"][0]["allowed"] == ["model-a", "model-b"]
    refused(api, {"chair_model": "gpt-unknown"}, "UNKNOWN_MODEL")
    not_chosen = {"personas": ["architect"], "persona_models": {"critic": "model-b"}}
    error = refused(api, not_chosen, "VALIDATION_ERROR")
    assert "critic" in error["message"]
    error = refused(api, {"chair": True}, "VALIDATION_ERROR")
    assert "CHAIR_MODEL" in error["message"]
    refused(api, {"review_rounds": 3}, "VALIDATION_ERROR")
    with api.stack.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Run)) == 0


def test_retry_takes_a_completed_run_only_when_its_chair_failed(make_api: ApiFactory) -> None:
    api = council_api(make_api, CHAIR_MODEL="model-b", REVIEW_ROUNDS="2")
    run_id = submitted(api, personas=["architect", "critic"])["run_id"]
    # The critic's review failed and its second round was skipped; the quorum let it pass.
    ended = {"review_critic": StepStatus.FAILED, "debate_critic": StepStatus.SKIPPED}

    def end(chair: StepStatus) -> None:
        with api.stack.sessions.begin() as session:
            run = session.get_one(Run, run_id)
            run.status = RunStatus.COMPLETED
            for step in run.steps:
                step.status = ended.get(step.step_name, StepStatus.COMPLETED)
                if step.step_name == "chair":
                    step.status = chair

    end(StepStatus.COMPLETED)
    assert api.acme.post(f"/v1/runs/{run_id}/retry").status == 409
    end(StepStatus.FAILED)
    retried = api.acme.post(f"/v1/runs/{run_id}/retry")
    assert retried.status == 202, retried.body
    assert retried.json()["steps"] == ["chair"]
    with api.stack.sessions() as session:
        statuses = dict(
            session.execute(
                sa.select(StepProgress.step_name, StepProgress.status).where(
                    StepProgress.run_id == run_id
                )
            ).all()
        )
    assert statuses == {
        "expand": StepStatus.COMPLETED,
        "review_architect": StepStatus.COMPLETED,
        "review_critic": StepStatus.FAILED,  # the decision stands: nothing else runs again
        "debate_architect": StepStatus.COMPLETED,
        "debate_critic": StepStatus.SKIPPED,
        "aggregate": StepStatus.COMPLETED,
        "chair": StepStatus.PENDING,
    }


def test_options_name_each_persona_s_model(make_api: ApiFactory, tmp_path: Any) -> None:
    personas = {
        "personas": [
            {"id": "hosted", "name": "Hosted", "weight": 0.5, "focus": "f", "instructions": "i"},
            {
                "id": "local",
                "name": "Local",
                "weight": 0.5,
                "focus": "f",
                "instructions": "i",
                "model": "model-b",
            },
        ]
    }
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(personas))
    api = council_api(make_api, PERSONAS_FILE=str(path))

    options = api.acme.get("/v1/options").json()

    assert [(p["id"], p["model"]) for p in options["personas"]] == [
        ("hosted", None),
        ("local", "model-b"),
    ]
