"""The model catalogue: its settings, where each price comes from, and the worker's refusal
of a model whose spend it could not count."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support import environ_without_settings, run_cli

from consensus_engine.llm import price_library
from consensus_engine.llm.catalogue import (
    CatalogueError,
    ModelCatalogue,
    ModelSpec,
    UnknownModelError,
    require_priced,
)
from consensus_engine.llm.pricing import DEFAULT_PRICES
from consensus_engine.settings import Settings, SettingsError

LOCAL = "http://127.0.0.1:9/v1"


def catalogue(entries: dict[str, Any] | None = None, **settings: Any) -> ModelCatalogue:
    if entries is not None:
        settings["model_catalogue_json"] = json.dumps(entries)
    return ModelCatalogue.from_settings(Settings(_env_file=None, **settings))


def prices(spec: ModelSpec | None) -> tuple[Decimal, Decimal, Decimal]:
    assert spec is not None
    return spec.input_per_million, spec.cached_input_per_million, spec.output_per_million


def test_without_settings_it_is_the_configured_models_priced_by_the_library() -> None:
    models = catalogue(expand_model="gpt-4.1", review_model="gpt-4o-mini")

    assert models.names == ("gpt-4.1", "gpt-4o-mini")
    spec = models.require("gpt-4o-mini")
    assert spec.provider == "openai" and spec.priced and not spec.free
    assert prices(spec) == (Decimal("0.15"), Decimal("0.075"), Decimal("0.6"))
    assert (spec.requests_per_minute, spec.tokens_per_minute) == (None, None)
    assert models.unpriced() == ()


def test_an_entry_overrides_the_library_price_by_price() -> None:
    models = catalogue(
        {
            "gpt-4.1-mini": {"output": 2, "rpm": 500, "tpm": 200_000},
            "gpt-4.1": {"input": 1, "cached_input": 0.5, "output": 3, "provider": "azure"},
        }
    )

    mini = models.require("gpt-4.1-mini")
    assert prices(mini) == (Decimal("0.4"), Decimal("0.1"), Decimal(2))
    assert (mini.requests_per_minute, mini.tokens_per_minute) == (500, 200_000)
    assert prices(models.get("gpt-4.1")) == (Decimal(1), Decimal("0.5"), Decimal(3))
    assert models.require("gpt-4.1").provider == "azure"


def test_llm_prices_json_comes_between_the_entry_and_the_library() -> None:
    overrides = '{"gpt-4.1-mini": {"input": 1, "output": 4}, "gpt-4.1": {"input": 7, "output": 9}}'
    models = catalogue(
        {"gpt-4.1-mini": {}, "gpt-4.1": {"output": 10}, "gpt-4o": {}},
        llm_prices_json=overrides,
    )

    # No cached price in LLM_PRICES_JSON: cached input costs the full input price.
    assert prices(models.get("gpt-4.1-mini")) == (Decimal(1), Decimal(1), Decimal(4))
    assert prices(models.get("gpt-4.1")) == (Decimal(7), Decimal(7), Decimal(10))
    assert prices(models.get("gpt-4o")) == (Decimal("2.5"), Decimal("1.25"), Decimal(10))


def test_the_built_in_table_is_the_last_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(price_library, "listed", lambda model, provider=None: None)

    spec = catalogue(expand_model="gpt-4.1", review_model="gpt-4.1").require("gpt-4.1")

    built_in = DEFAULT_PRICES["gpt-4.1"]
    assert prices(spec) == (
        built_in.input_per_million,
        built_in.input_per_million,
        built_in.output_per_million,
    )
    assert spec.provider == "openai"


def test_a_tiered_library_price_counts_at_its_base() -> None:
    spec = catalogue({"claude-sonnet-4-5": {}, "gpt-4.1-mini": {}}).require("claude-sonnet-4-5")

    assert spec.provider == "anthropic"
    assert prices(spec) == (Decimal(3), Decimal("0.3"), Decimal(15))


def test_free_and_unpriced_models() -> None:
    models = catalogue(
        {"gpt-4.1-mini": {}, "local-model": {"free": True, "rpm": 120}, "my-llama": {}},
        openai_base_url=LOCAL,
    )

    free = models.require("local-model")
    assert free.free and free.priced and prices(free) == (Decimal(0),) * 3
    assert free.requests_per_minute == 120
    assert models.unpriced() == ("my-llama",)
    assert not models.require("my-llama").priced
    with pytest.raises(CatalogueError) as refused:
        require_priced(models)
    message = str(refused.value)
    assert "my-llama" in message and "local-model" not in message
    assert "MODEL_CATALOGUE_JSON" in message and '"free": true' in message
    assert "\n" not in message
    require_priced(catalogue({"gpt-4.1-mini": {}, "local-model": {"free": True}}))


def test_a_price_of_zero_is_not_free() -> None:
    models = catalogue({"gpt-4.1-mini": {}, "local": {"input": 0, "output": 0}})

    assert models.unpriced() == ("local",)


def test_costs_come_from_the_catalogue() -> None:
    models = catalogue(
        {"gpt-4.1-mini": {"input": 2, "output": 4}, "local-model": {"free": True}},
    )

    spec = models.require("gpt-4.1-mini")
    assert spec.worst_cost(1_000_000, 500_000) == Decimal(4)
    cost = models.cost("gpt-4.1-mini", 1_000, 1_000)
    assert cost.priced and cost.usd == Decimal("0.006")
    free = models.cost("local-model", 1_000, 1_000)
    assert free.priced and free.usd == 0
    outside = models.cost("gpt-4o", 1_000, 1_000)
    assert not outside.priced and outside.usd == 0


def test_an_unknown_model_is_refused_with_the_allowed_ones() -> None:
    models = catalogue({"gpt-4.1-mini": {}, "gpt-4.1": {}})

    assert models.get("o1-pro") is None
    assert models.names == ("gpt-4.1", "gpt-4.1-mini")
    with pytest.raises(UnknownModelError) as refused:
        models.require("o1-pro")
    assert isinstance(refused.value, ValueError)
    assert refused.value.model == "o1-pro"
    assert refused.value.allowed == ("gpt-4.1", "gpt-4.1-mini")


def test_the_file_and_the_variable_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"gpt-4.1-mini": {"rpm": 10}, "gpt-4.1": {}}), encoding="utf-8")

    models = catalogue({"gpt-4.1-mini": {"rpm": 20}}, model_catalogue_file=path)

    assert models.names == ("gpt-4.1", "gpt-4.1-mini")
    assert models.require("gpt-4.1-mini").requests_per_minute == 20
    assert catalogue(model_catalogue_file=path).require("gpt-4.1-mini").requests_per_minute == 10


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"model_catalogue_json": "{not json"}, "MODEL_CATALOGUE_JSON: top level: "),
        ({"model_catalogue_json": "[]"}, "MODEL_CATALOGUE_JSON: top level: "),
        (
            {"model_catalogue_json": '{"gpt-4.1-mini": {"input": -1}}'},
            "MODEL_CATALOGUE_JSON: gpt-4.1-mini.input: ",
        ),
        (
            {"model_catalogue_json": '{"gpt-4.1-mini": {"rpm": 0}}'},
            "MODEL_CATALOGUE_JSON: gpt-4.1-mini.rpm: ",
        ),
        (
            {"model_catalogue_json": '{"gpt-4.1-mini": {"price": 1}}'},
            "MODEL_CATALOGUE_JSON: gpt-4.1-mini.price: ",
        ),
        (
            {"model_catalogue_json": '{"gpt-4.1-mini": {"free": true, "input": 1}}'},
            "MODEL_CATALOGUE_JSON: gpt-4.1-mini: a free model takes no prices",
        ),
        (
            {"model_catalogue_json": '{"gpt-4.1-mini": {}, "mine": {"input": 1}}'},
            "mine: no price source knows this model; give both input and output",
        ),
        (
            {"model_catalogue_json": '{"gpt-4.1": {}}'},
            "EXPAND_MODEL: gpt-4.1-mini is not in the model catalogue",
        ),
        (
            {"model_catalogue_json": '{"gpt-4.1-mini": {}}', "review_model": "gpt-4.1"},
            "REVIEW_MODEL: gpt-4.1 is not in the model catalogue",
        ),
        ({"model_catalogue_file": Path("/nonexistent/models.json")}, "MODEL_CATALOGUE_FILE: "),
        ({"llm_prices_json": '{"m": {"input": 1}}'}, "LLM_PRICES_JSON: m.output: "),
    ],
)
def test_bad_settings_are_one_line_naming_the_setting(
    settings: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        catalogue(**settings)

    assert isinstance(refused.value, CatalogueError)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


# -- programs that refuse to start ------------------------------------------------------------


def _env(**settings: str) -> dict[str, str]:
    return environ_without_settings() | {"PUBSUB_USE_MOCK": "true", **settings}


def test_the_worker_refuses_an_unpriced_model(tmp_path: Path) -> None:
    env = _env(OPENAI_BASE_URL=LOCAL, EXPAND_MODEL="my-llama")
    command = [sys.executable, "-m", "dramatiq", "consensus_engine.actors", "-p", "1", "-t", "1"]

    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode != 0
    # Dramatiq's main process may log the worker's exit after the worker's own last line.
    reason = [line for line in result.stderr.splitlines() if "cannot start the worker:" in line][-1]
    assert "cannot start the worker: no price is known for my-llama:" in reason
    assert "MODEL_CATALOGUE_JSON" in reason


def test_the_guides_worker_entry_point_says_so_in_one_line(tmp_path: Path) -> None:
    env = _env(OPENAI_BASE_URL=LOCAL, REVIEW_MODEL="my-llama")
    command = [sys.executable, "-m", "consensus_engine.workers.pipeline_worker"]

    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 1
    assert result.stderr.startswith("pipeline worker: no price is known for my-llama:")
    assert result.stderr.strip().count("\n") == 0


def test_a_free_local_model_passes_the_workers_check() -> None:
    local = json.dumps({"my-llama": {"free": True}, "gpt-4.1-mini": {}})
    settings = Settings(
        _env_file=None, openai_base_url=LOCAL, expand_model="my-llama", model_catalogue_json=local
    )

    require_priced(ModelCatalogue.from_settings(settings))


def test_the_api_refuses_a_bad_catalogue_in_one_line(tmp_path: Path) -> None:
    env = _env(MODEL_CATALOGUE_JSON='{"gpt-4.1": {}}')

    result = run_cli("api", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("consensus-engine: EXPAND_MODEL: gpt-4.1-mini is not in")
    assert result.stderr.strip().count("\n") == 0
