"""What the maintained price library (genai-prices) says a model costs.

Only the data bundled with the installed package is read, never fetched, so a
deployment's prices change when it upgrades the package and not behind its back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from genai_prices import Usage, calc_price
from genai_prices.types import TieredPrices

from consensus_engine.llm.pricing import ModelPrice


@dataclass(frozen=True)
class ListedModel:
    """A model the library knows: the provider it found it under, and today's price."""

    provider: str
    price: ModelPrice


def listed(model: str, provider: str | None = None) -> ListedModel | None:
    """The library's entry for ``model`` (under ``provider``, or the provider the library
    infers from the name); ``None`` when it has no token prices for it."""
    try:
        found = calc_price(Usage(), model, provider_id=provider)
    except LookupError:
        return None
    prices = found.model_price
    input_price, output_price = _flat(prices.input_mtok), _flat(prices.output_mtok)
    if input_price is None or output_price is None:
        return None
    price = ModelPrice(input_price, output_price, _flat(prices.cache_read_mtok))
    return ListedModel(found.provider.id, price)


def _flat(price: Decimal | TieredPrices | None) -> Decimal | None:
    """A tiered price's base: the tiers start far above the prompts this project sends."""
    return price.base if isinstance(price, TieredPrices) else price
