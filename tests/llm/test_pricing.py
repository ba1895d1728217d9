"""Token counts to dollars: the built-in table and validated LLM_PRICES_JSON entries. Which
source prices a model is the catalogue's business (``tests/unit/test_catalogue.py``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from consensus_engine.llm.pricing import (
    DEFAULT_PRICES,
    ModelPrice,
    PriceTable,
    PricingError,
    cost_usd,
    parse_prices_json,
)


def test_default_price_is_per_million_tokens() -> None:
    # gpt-4.1-mini defaults: 0.40 in, 1.60 out per 1M tokens.
    assert cost_usd("gpt-4.1-mini", 1_000, 500) == Decimal("0.0012")


def test_every_default_model_is_priced() -> None:
    table = PriceTable()
    for model in ("gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "gpt-5.1"):
        cost = table.cost(model, 1_000_000, 0)
        assert cost.priced and cost.usd == DEFAULT_PRICES[model].input_per_million


def test_dated_snapshot_uses_its_base_price() -> None:
    table = PriceTable()

    assert table.price_for("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert table.price_for("gpt-4o-mini-audio") is None


def test_unknown_model_costs_zero_and_is_flagged() -> None:
    cost = PriceTable().cost("my-local-llama", 10_000, 10_000)

    assert (cost.usd, cost.priced) == (Decimal(0), False)


def test_an_override_table_holds_exactly_its_models() -> None:
    table = PriceTable(
        parse_prices_json(
            '{"gpt-4o": {"input": 1, "output": 2}, "local": {"input": 0, "output": 0}}'
        )
    )

    assert table.price_for("gpt-4o") == ModelPrice(Decimal(1), Decimal(2))
    assert table.cost("local", 5, 5).priced
    assert table.price_for("gpt-4.1") is None


def test_decimal_prices_stay_exact() -> None:
    table = PriceTable(parse_prices_json('{"m": {"input": 0.1, "output": 0.2}}'))

    assert table.cost_usd("m", 3_000_000, 0) == Decimal("0.3")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("{not json", "top level"),
        ("[]", "top level"),
        ('{"m": {"input": 1}}', "m.output"),
        ('{"m": {"input": -1, "output": 1}}', "m.input"),
        ('{"m": {"input": 1, "output": 1, "cached": 1}}', "m.cached"),
        ('{"m": {"input": true, "output": 1}}', "m.input"),
        ('{"m": {"input": "NaN", "output": 1}}', "m.input"),
    ],
)
def test_bad_override_names_the_entry(text: str, where: str) -> None:
    with pytest.raises(PricingError, match=f"^LLM_PRICES_JSON: {where}: "):
        parse_prices_json(text)
