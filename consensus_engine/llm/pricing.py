"""Token counts to US dollars.

A deployment prices its calls with its model catalogue (``llm/catalogue.py``), which
takes a model's prices from its own entry, ``LLM_PRICES_JSON``, the maintained price
library and, last, the small built-in table below. A model no source prices costs 0 and
is flagged ``priced=False`` instead of failing the run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

_MILLION = Decimal(1_000_000)
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


class PricingError(ValueError):
    """``LLM_PRICES_JSON`` is malformed; the message names the entry at fault."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per one million tokens; ``cached_input_per_million`` ``None``: no discount known."""

    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None

    def usd(self, input_tokens: int, output_tokens: int) -> Decimal:
        """A call's cost with every input token at the full (uncached) price."""
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / _MILLION


@dataclass(frozen=True, slots=True)
class Cost:
    usd: Decimal
    priced: bool


class Prices(Protocol):
    """What the LLM client prices its calls with: the catalogue, or a bare table."""

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> Cost: ...


def _price(input_per_million: str, output_per_million: str) -> ModelPrice:
    return ModelPrice(Decimal(input_per_million), Decimal(output_per_million))


DEFAULT_PRICES: Mapping[str, ModelPrice] = MappingProxyType(
    {
        # Configurable defaults (USD per 1M tokens), not a source of truth.
        "gpt-4.1": _price("2.00", "8.00"),
        "gpt-4.1-mini": _price("0.40", "1.60"),
        "gpt-4o": _price("2.50", "10.00"),
        "gpt-4o-mini": _price("0.15", "0.60"),
        "gpt-5.1": _price("1.25", "10.00"),
    }
)


class _PriceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Decimal = Field(ge=0, allow_inf_nan=False)
    output: Decimal = Field(ge=0, allow_inf_nan=False)


_OVERRIDES = TypeAdapter(dict[str, _PriceEntry])


def parse_prices_json(text: str) -> dict[str, ModelPrice]:
    """Parse ``{"model": {"input": x, "output": y}}`` (USD per 1M tokens)."""
    try:
        entries = _OVERRIDES.validate_json(text)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        raise PricingError(f"LLM_PRICES_JSON: {where}: {first['msg']}") from None
    return {model: ModelPrice(entry.input, entry.output) for model, entry in entries.items()}


class PriceTable:
    """Looks prices up by model name; dated snapshots fall back to their base model."""

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices = dict(DEFAULT_PRICES if prices is None else prices)

    def price_for(self, model: str) -> ModelPrice | None:
        exact = self._prices.get(model)
        if exact is not None:
            return exact
        return self._prices.get(_SNAPSHOT_SUFFIX.sub("", model))

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> Cost:
        price = self.price_for(model)
        if price is None:
            return Cost(Decimal(0), priced=False)
        return Cost(price.usd(input_tokens, output_tokens), priced=True)

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> Decimal:
        return self.cost(model, input_tokens, output_tokens).usd


_DEFAULT_TABLE = PriceTable()


def cost_usd(
    model: str, input_tokens: int, output_tokens: int, *, prices: PriceTable | None = None
) -> Decimal:
    """Cost of one call; 0 for a model the table does not know."""
    return (prices or _DEFAULT_TABLE).cost_usd(model, input_tokens, output_tokens)
