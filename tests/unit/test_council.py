"""The council's rules without a database: the order of stages, what a run stores, which
model reviews for whom, and where each model's calls go."""

from __future__ import annotations

import json
import uuid

import pytest

from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.council import Council, persona_choice, review_models
from consensus_engine.domain.personas import DEFAULT_PERSONAS, PersonaConfigError, PersonaSet
from consensus_engine.domain.runs import Job, Priority, Stage, StepStatus, parse_step, progress
from consensus_engine.domain.runs import StepStatus as S
from consensus_engine.llm import LLMClient
from consensus_engine.llm.catalogue import CatalogueError, ModelCatalogue
from consensus_engine.llm.providers import ProviderConfigError, providers, routes
from consensus_engine.settings import Settings

IDS = ["architect", "critic"]


def statuses(**named: StepStatus) -> dict[str, StepStatus]:
    """Every step of a two-persona run with two rounds and a chair, pending unless named."""
    steps = Council(rounds=2, chair=ModelChoice("m", None)).steps(DEFAULT_PERSONAS.select(IDS))
    return {name: named.get(name, S.PENDING) for name in steps}


def test_the_steps_of_a_council_run_in_order() -> None:
    assert Council(rounds=2, chair=ModelChoice("m", None)).steps(DEFAULT_PERSONAS.select(IDS)) == [
        "expand",
        "review_architect",
        "review_critic",
        "debate_architect",
        "debate_critic",
        "aggregate",
        "chair",
    ]
    assert parse_step("debate_critic") == (Stage.DEBATE, "critic")
    assert parse_step("chair") == (Stage.CHAIR, None)
    run_id = uuid.uuid4()
    assert Job.of_step("debate_critic", run_id, Priority.HIGH) == Job(
        Stage.DEBATE, run_id, Priority.HIGH, "critic"
    )


def test_progress_moves_stage_by_stage() -> None:
    done = S.COMPLETED
    assert progress(statuses()).stage is Stage.EXPAND
    reviewing = progress(statuses(expand=done, review_architect=S.RUNNING))
    assert (reviewing.stage, reviewing.open_steps) == (
        Stage.REVIEW,
        ("review_architect", "review_critic"),
    )
    debating = progress(statuses(expand=done, review_architect=done, review_critic=done))
    assert debating.open_steps == ("debate_architect", "debate_critic")
    everything = dict.fromkeys(statuses(), done)
    assert progress(everything).stage is None
    chairing = progress(everything | {"chair": S.RUNNING})
    assert (chairing.stage, chairing.open_steps) == (Stage.CHAIR, ("chair",))


def test_a_persona_without_a_first_review_has_no_second_round() -> None:
    failed = statuses(expand=S.COMPLETED, review_architect=S.COMPLETED, review_critic=S.FAILED)

    where = progress(failed)

    assert where.never == ("debate_critic",)
    assert (where.stage, where.open_steps) == (Stage.DEBATE, ("debate_architect",))
    alone = progress(failed | {"debate_architect": S.COMPLETED})
    assert (alone.stage, alone.open_steps) == (Stage.AGGREGATE, ("aggregate",))


def test_a_council_round_trips_through_the_run_s_parameters() -> None:
    council = Council(rounds=2, chair=ModelChoice("chair-m", 0.3), chair_fallback="spare")
    assert Council.of(json.loads(json.dumps(council.to_parameters()))) == council
    assert Council.of({}) == Council()  # a run from before councils
    with pytest.raises(ValueError, match="1 or 2"):
        Council(rounds=3)


def test_a_persona_s_model_wins_over_the_run_s_and_a_request_s_over_both() -> None:
    panel = DEFAULT_PERSONAS.select(IDS).with_models({"critic": "own"})
    review = ModelChoice("run-wide", 0.2)
    assert persona_choice(panel["critic"], review) == ModelChoice("own", 0.2)
    assert persona_choice(panel["architect"], review) == review

    chosen = review_models(panel, run_wide="asked", per_persona={"architect": "mine"})
    assert [p.model for p in chosen] == ["mine", "asked"]
    assert review_models(panel, run_wide=None, per_persona=None) == panel
    with pytest.raises(PersonaConfigError, match="optimist"):
        review_models(panel, run_wide=None, per_persona={"optimist": "x"})


def test_a_persona_file_may_name_a_model_and_keeps_it() -> None:
    data = DEFAULT_PERSONAS.select(IDS).with_models({"critic": "local-m"}).to_dict()
    assert "model" not in data["personas"][0] and data["personas"][1]["model"] == "local-m"
    assert PersonaSet.from_dict(data)["critic"].model == "local-m"
    data["personas"][1]["model"] = ""
    with pytest.raises(PersonaConfigError, match="model"):
        PersonaSet.from_dict(data)


def settings(**values: object) -> Settings:
    return Settings.model_validate({"openai_base_url": "http://127.0.0.1:1/v1", **values})


def test_providers_come_from_one_setting_and_their_keys_from_named_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_KEY", "  sk-gateway  ")
    configured = providers(
        settings(
            llm_providers_json=json.dumps(
                {
                    "gateway": {
                        "base_url": "https://gateway.example/api/v1/",
                        "api_key_env": "GATEWAY_KEY",
                        "timeout_seconds": 30,
                    },
                    "local": {"base_url": "http://127.0.0.1:8081/v1", "api_mode": "chat"},
                }
            ),
            llm_timeout_seconds=90,
        )
    )
    assert list(configured) == ["default", "gateway", "local"]
    gateway, local = configured["gateway"], configured["local"]
    assert (gateway.base_url, gateway.api_key, gateway.timeout_seconds) == (
        "https://gateway.example/api/v1",
        "sk-gateway",
        30,
    )
    assert (local.api_key, local.api_mode, local.timeout_seconds) == (None, "chat", 90)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"default": {"base_url": "http://x.example/v1"}}, "'default' is the provider"),
        ({"gw": {"base_url": "http://x.example", "api_key_env": "NOT_SET_ANYWHERE"}}, "not set"),
        ({"gw": {"base_url": "not a url"}}, "gw.base_url"),
        ({"gw": {"base_url": "http://x.example", "api_mode": "magic"}}, "gw.api_mode"),
        ({"Bad Name": {"base_url": "http://x.example"}}, "LLM_PROVIDERS_JSON"),
    ],
)
def test_a_wrong_provider_setting_stops_with_one_line(
    value: dict[str, object], message: str
) -> None:
    with pytest.raises(ProviderConfigError, match=message) as raised:
        providers(settings(llm_providers_json=json.dumps(value)))
    assert "\n" not in str(raised.value)


def test_a_model_goes_to_the_provider_its_catalogue_entry_names_if_configured() -> None:
    configured = settings(
        review_model="local-m",
        llm_providers_json=json.dumps({"local": {"base_url": "http://127.0.0.1:2/v1"}}),
        model_catalogue_json=json.dumps(
            {
                "gpt-4.1-mini": {},
                "local-m": {"free": True, "provider": "local"},
                "elsewhere-m": {"free": True, "provider": "unconfigured"},
            }
        ),
    )
    served = routes(ModelCatalogue.from_settings(configured), providers(configured))
    assert served == {"gpt-4.1-mini": "default", "local-m": "local", "elsewhere-m": "default"}
    with LLMClient.from_settings(configured) as client:
        assert client.provider_of("local-m") == "local"
        assert client.provider_of("gpt-4.1-mini") == client.provider_of("elsewhere-m") == "default"


def test_settings_refuse_a_chair_fallback_without_a_chair() -> None:
    with pytest.raises(ValueError, match="CHAIR_FALLBACK_MODEL needs CHAIR_MODEL"):
        settings(chair_fallback_model="spare")


def test_the_chair_s_models_must_be_in_the_catalogue() -> None:
    configured = settings(
        chair_model="chair-m", model_catalogue_json=json.dumps({"gpt-4.1-mini": {}})
    )
    with pytest.raises(CatalogueError, match="CHAIR_MODEL: chair-m is not in the model catalogue"):
        ModelCatalogue.from_settings(configured)
    assert "chair-m" in ModelCatalogue.from_settings(settings(chair_model="chair-m")).names
