"""The README's council section: its examples load with the real loaders, so they cannot rot.

The section's JSON blocks (providers, catalogue, persona file, request body) and its
command line are read out of README.md and fed to what a deployment feeds them to:
``PersonaSet.from_dict`` and ``personas_from_settings``, the providers parser, the model
catalogue, the request schema and the command's parser.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from consensus_engine.api.schemas import SubmitRunRequest
from consensus_engine.cli import build_parser
from consensus_engine.domain.personas import PersonaSet
from consensus_engine.llm.catalogue import ModelCatalogue, require_priced
from consensus_engine.llm.providers import ProviderConfigError, providers, routes
from consensus_engine.pipeline.config import personas_from_settings
from consensus_engine.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### The council: providers, models, rounds and the chair"
GATEWAY_KEY = "OPENROUTER_API_KEY"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(f"\n{HEADING}\n") == 1, "the council section is missing or repeated"
    start = text.index(f"\n{HEADING}\n") + 1
    end = text.find("\n## ", start + 1)
    nxt = text.find("\n### ", start + 1)
    return text[start : min(i for i in (end, nxt, len(text)) if i != -1)]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", _section(), flags=re.M | re.S)


def _examples() -> dict[str, Any]:
    """The section's JSON blocks by what they are; exactly one of each."""
    found: dict[str, Any] = {}
    for block in _blocks("json"):
        value = json.loads(block)
        if "personas" in value:
            kind = "personas"
        elif "idea" in value:
            kind = "request"
        elif all(isinstance(v, dict) and "base_url" in v for v in value.values()):
            kind = "providers"
        else:
            kind = "catalogue"
        assert kind not in found, f"two {kind} examples"
        found[kind] = value
    assert set(found) == {"personas", "request", "providers", "catalogue"}
    return found


@pytest.fixture
def examples() -> dict[str, Any]:
    return _examples()


def _settings(examples: dict[str, Any], **extra: Any) -> Settings:
    return Settings(
        _env_file=None,
        openai_api_key="sk-default-test",
        llm_providers_json=json.dumps(examples["providers"]),
        model_catalogue_json=json.dumps(examples["catalogue"]),
        **extra,
    )


def test_the_persona_file_loads_and_its_weights_sum_to_one(examples: dict[str, Any]) -> None:
    personas = PersonaSet.from_dict(examples["personas"])
    assert personas.ids == ("architect", "critic", "security_guardian")
    assert sum(personas.weights.values()) == pytest.approx(1.0)
    assert PersonaSet.from_dict(personas.to_dict()) == personas


def test_the_providers_load_with_the_gateway_key_from_its_variable(
    examples: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GATEWAY_KEY, "sk-or-test")
    configured = providers(_settings(examples))
    assert sorted(configured) == ["default", "local", "openrouter"]
    assert configured["openrouter"].api_key == "sk-or-test"
    assert configured["local"].api_key is None
    assert configured["local"].base_url == examples["providers"]["local"]["base_url"]


def test_the_gateway_without_its_key_variable_is_refused_naming_it(
    examples: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(GATEWAY_KEY, raising=False)
    with pytest.raises(ProviderConfigError, match=GATEWAY_KEY):
        providers(_settings(examples))


def test_each_persona_goes_to_the_provider_the_section_says(
    examples: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(GATEWAY_KEY, "sk-or-test")
    persona_file = tmp_path / "personas.json"
    persona_file.write_text(json.dumps(examples["personas"]), encoding="utf-8")
    settings = _settings(examples, personas_file=persona_file)

    personas = personas_from_settings(settings)  # the API's start-up check of persona models
    catalogue = ModelCatalogue.from_settings(settings)
    require_priced(catalogue)  # the worker's start-up check: every model priced or free
    served = routes(catalogue, providers(settings))
    by_persona = {p.id: served[p.model or settings.review_model] for p in personas}
    assert by_persona == {
        "architect": "openrouter",
        "critic": "local",
        "security_guardian": "default",
    }
    assert served[settings.expand_model] == "default"


def test_the_request_body_is_valid_and_names_catalogued_models(examples: dict[str, Any]) -> None:
    request = SubmitRunRequest.model_validate(examples["request"])
    assert request.review_rounds == 2 and request.chair is True
    named = {*(request.persona_models or {}).values(), request.chair_model}
    assert named <= set(examples["catalogue"])
    assert set(request.persona_models or {}) <= {p["id"] for p in examples["personas"]["personas"]}


def test_the_command_line_example_asks_for_what_the_request_body_does(
    examples: dict[str, Any],
) -> None:
    [command] = [b for b in _blocks("bash") if "consensus-engine submit" in b]
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:2] == ["consensus-engine", "submit"]
    args = build_parser().parse_args(words[1:])
    body = examples["request"]
    assert args.idea == body["idea"]
    assert args.persona_models == body["persona_models"]
    assert args.review_rounds == body["review_rounds"]
    assert args.chair_model == body["chair_model"]


def test_the_latency_figures_name_the_benchmark_that_measured_them() -> None:
    section = _section()
    assert "bench.pipeline" in section and "--council plain debate chair both" in section
    assert "<!--" not in section  # no placeholder left
