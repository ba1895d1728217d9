"""The models a deployment allows, each with its provider, prices and rate limits.

One settings source: ``MODEL_CATALOGUE_FILE`` and ``MODEL_CATALOGUE_JSON`` hold the same
JSON object, ``{"model": {"provider", "input", "cached_input", "output", "rpm", "tpm",
"free"}}`` (every key optional, prices in USD per million tokens); the variable's entries
replace the file's. Without either, the catalogue is the model settings' models.
``provider`` names where the model's calls go when ``LLM_PROVIDERS_JSON`` configures a
provider of that name (``llm/providers.py``); otherwise they go to the default one.
A price an entry leaves out comes from the first source that knows the model:
``LLM_PRICES_JSON``, then the price library (genai-prices), then the built-in table. A
model no source prices costs 0, which a worker refuses unless the entry says ``free``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from consensus_engine.llm import price_library
from consensus_engine.llm.pricing import (
    Cost,
    ModelPrice,
    PriceTable,
    PricingError,
    parse_prices_json,
)
from consensus_engine.settings import SettingsError

if TYPE_CHECKING:
    from consensus_engine.settings import Settings

DEFAULT_PROVIDER = "openai"
"""The provider of a model neither its entry nor the price library names: this client
speaks OpenAI's API."""

_SETTINGS = "MODEL_CATALOGUE_FILE or MODEL_CATALOGUE_JSON"


class CatalogueError(SettingsError):
    """The catalogue settings are unusable; the message is one line naming the setting."""


class UnknownModelError(ValueError):
    """A model outside the catalogue was asked for."""

    def __init__(self, model: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{model} is not in the model catalogue; allowed: {', '.join(allowed)}")
        self.model = model
        self.allowed = allowed


@dataclass(frozen=True)
class ModelSpec:
    """One allowed model. Prices are USD per million tokens, 0 where no source knows one."""

    name: str
    provider: str
    input_per_million: Decimal
    cached_input_per_million: Decimal
    output_per_million: Decimal
    requests_per_minute: int | None
    tokens_per_minute: int | None
    free: bool

    @property
    def priced(self) -> bool:
        """Its spend can be counted: it is free on purpose, or some price is known."""
        prices = (self.input_per_million, self.cached_input_per_million, self.output_per_million)
        return self.free or any(price > 0 for price in prices)

    def worst_cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """USD for a call with no input token cached: the most it can cost."""
        return ModelPrice(self.input_per_million, self.output_per_million).usd(
            input_tokens, output_tokens
        )


class ModelCatalogue:
    """The allowed models by name; what the API checks requests against, and what the LLM
    client prices its calls with."""

    def __init__(self, specs: Iterable[ModelSpec]) -> None:
        self._specs = {spec.name: spec for spec in specs}

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelCatalogue:
        """Raises :class:`CatalogueError` for malformed entries, an unreadable file, or a
        model setting (``EXPAND_MODEL``, ``REVIEW_MODEL``, ``CHAIR_MODEL``…) missing from
        the catalogue."""
        configured = settings.configured_models
        entries = _configured(settings)
        if entries is None:
            entries = {model: _Entry() for model in configured.values()}
        for name, model in configured.items():
            if model not in entries:
                raise CatalogueError(
                    f"{name}: {model} is not in the model catalogue ({_SETTINGS}), which "
                    f"allows: {', '.join(sorted(entries))}"
                )
        known = _KnownPrices(settings.llm_prices_json)
        return cls(_spec(model, entry, known) for model, entry in entries.items())

    def get(self, model: str) -> ModelSpec | None:
        """The model's entry; ``None``: not allowed."""
        return self._specs.get(model)

    def require(self, model: str) -> ModelSpec:
        spec = self._specs.get(model)
        if spec is None:
            raise UnknownModelError(model, self.names)
        return spec

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._specs))

    def unpriced(self) -> tuple[str, ...]:
        """Allowed models whose calls would be counted as costing nothing, by mistake."""
        return tuple(name for name in self.names if not self._specs[name].priced)

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> Cost:
        """What one call is recorded as costing; 0 and not priced outside the catalogue.
        Providers report no cached tokens to this client, so every input token is full
        price."""
        spec = self._specs.get(model)
        if spec is None:
            return Cost(Decimal(0), priced=False)
        return Cost(spec.worst_cost(input_tokens, output_tokens), priced=spec.priced)


def require_priced(catalogue: ModelCatalogue) -> None:
    """A worker's check: spend on a model without a price would go uncounted."""
    missing = catalogue.unpriced()
    if missing:
        raise CatalogueError(
            f"no price is known for {', '.join(missing)}: give input and output prices in "
            f"{_SETTINGS}, or mark a model that costs nothing per token (a local server) "
            '"free": true'
        )


_Price = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
_Limit = Annotated[int, Field(ge=1)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(default=None, min_length=1)
    input: _Price | None = None
    cached_input: _Price | None = None
    output: _Price | None = None
    rpm: _Limit | None = None
    tpm: _Limit | None = None
    free: bool = False

    @model_validator(mode="after")
    def _free_has_no_price(self) -> _Entry:
        if self.free and self.has_price:
            raise ValueError("a free model takes no prices")
        return self

    @property
    def has_price(self) -> bool:
        return any(price is not None for price in (self.input, self.cached_input, self.output))


_ENTRIES = TypeAdapter(dict[Annotated[str, Field(min_length=1)], _Entry])


def _configured(settings: Settings) -> dict[str, _Entry] | None:
    """The entries the settings give, the variable's over the file's; ``None`` if neither
    setting is used."""
    path, text = settings.model_catalogue_file, settings.model_catalogue_json
    if path is None and not (text and text.strip()):
        return None
    entries: dict[str, _Entry] = {}
    if path is not None:
        entries |= _parse(_read(path), "MODEL_CATALOGUE_FILE")
    if text and text.strip():
        entries |= _parse(text, "MODEL_CATALOGUE_JSON")
    return entries


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise CatalogueError(f"MODEL_CATALOGUE_FILE: cannot read {path}: {reason}") from None


def _parse(text: str, setting: str) -> dict[str, _Entry]:
    try:
        return _ENTRIES.validate_json(text)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        message = first["msg"].removeprefix("Value error, ")
        raise CatalogueError(f"{setting}: {where}: {message}") from None


class _KnownPrices:
    """The sources an entry's missing prices come from, most trusted first."""

    def __init__(self, overrides_json: str | None) -> None:
        try:
            overrides = parse_prices_json(overrides_json) if overrides_json else {}
        except PricingError as error:
            raise CatalogueError(str(error)) from None
        self._overrides = PriceTable(overrides)
        self._built_in = PriceTable()

    def provider(self, model: str) -> str:
        listed = price_library.listed(model)
        return listed.provider if listed else DEFAULT_PROVIDER

    def price(self, model: str, provider: str) -> ModelPrice | None:
        override = self._overrides.price_for(model)
        if override is not None:
            return override
        listed = price_library.listed(model, provider)
        if listed is not None:
            return listed.price
        return self._built_in.price_for(model)


def _spec(model: str, entry: _Entry, known: _KnownPrices) -> ModelSpec:
    provider = entry.provider or known.provider(model)
    base = None if entry.free else known.price(model, provider)
    input_price, output_price, cached = entry.input, entry.output, entry.cached_input
    if base is not None:
        input_price = _first(input_price, base.input_per_million)
        output_price = _first(output_price, base.output_per_million)
        cached = _first(cached, base.cached_input_per_million)
    if entry.has_price and (input_price is None or output_price is None):
        raise CatalogueError(
            f"{_SETTINGS}: {model}: no price source knows this model; give both input and output"
        )
    zero = Decimal(0)
    return ModelSpec(
        name=model,
        provider=provider,
        input_per_million=input_price or zero,
        cached_input_per_million=_first(cached, input_price) or zero,
        output_per_million=output_price or zero,
        requests_per_minute=entry.rpm,
        tokens_per_minute=entry.tpm,
        free=entry.free,
    )


def _first(*prices: Decimal | None) -> Decimal | None:
    return next((price for price in prices if price is not None), None)
