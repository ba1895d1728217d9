"""The OpenAI-compatible servers a deployment calls, and which of them serves each model.

One settings source: ``LLM_PROVIDERS_JSON`` is ``{"name": {"base_url", "api_key_env",
"api_mode", "timeout_seconds"}}``; each provider's key is read from the variable its
``api_key_env`` names, so the JSON holds no secret. The ``default`` provider is the one the
``OPENAI_*`` and ``LLM_*`` settings describe (OpenAI itself unless ``OPENAI_BASE_URL`` says
otherwise). A model goes to the provider its catalogue entry names when that provider is
configured here, and to ``default`` otherwise, so a catalogue written before providers
existed keeps every model where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, TypeAdapter, ValidationError

from consensus_engine.llm.records import ApiMode
from consensus_engine.settings import SettingsError

if TYPE_CHECKING:
    from consensus_engine.llm.catalogue import ModelCatalogue
    from consensus_engine.settings import Settings

DEFAULT_PROVIDER = "default"
"""The provider the ``OPENAI_*`` settings describe."""


class ProviderConfigError(SettingsError):
    """``LLM_PROVIDERS_JSON`` is unusable; the message is one line naming what to fix."""


@dataclass(frozen=True)
class Provider:
    """One server: where it is, its key, how to ask it for structured output, how long to
    wait for it."""

    name: str
    base_url: str | None
    """``None``: OpenAI's own API."""
    api_key: str | None
    api_mode: ApiMode
    timeout_seconds: float


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: HttpUrl
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    api_mode: ApiMode = "auto"
    timeout_seconds: Annotated[float, Field(gt=0, le=900)] | None = None


_NAME = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,49}$")]
_ENTRIES = TypeAdapter(dict[_NAME, _Entry])


def providers(settings: Settings) -> dict[str, Provider]:
    """Every configured provider by name, ``default`` first."""
    key = settings.openai_api_key
    found = {
        DEFAULT_PROVIDER: Provider(
            name=DEFAULT_PROVIDER,
            base_url=settings.openai_base_url,
            api_key=key.get_secret_value() if key else None,
            api_mode=settings.llm_api_mode,
            timeout_seconds=settings.llm_timeout_seconds,
        )
    }
    for name, entry in _parse(settings.llm_providers_json).items():
        if name == DEFAULT_PROVIDER:
            raise ProviderConfigError(
                "LLM_PROVIDERS_JSON: 'default' is the provider the OPENAI_* settings describe; "
                "give this one another name"
            )
        secret = settings.secret_variable(entry.api_key_env) if entry.api_key_env else None
        if entry.api_key_env and secret is None:
            raise ProviderConfigError(
                f"LLM_PROVIDERS_JSON: {name}: its key variable {entry.api_key_env} is not set"
            )
        found[name] = Provider(
            name=name,
            base_url=str(entry.base_url).rstrip("/"),
            api_key=secret.get_secret_value() if secret else None,
            api_mode=entry.api_mode,
            timeout_seconds=entry.timeout_seconds or settings.llm_timeout_seconds,
        )
    return found


def routes(catalogue: ModelCatalogue, configured: dict[str, Provider]) -> dict[str, str]:
    """Model -> the provider serving it, for every model of the catalogue."""
    served = {}
    for model in catalogue.names:
        named = catalogue.require(model).provider
        served[model] = named if named in configured else DEFAULT_PROVIDER
    return served


def _parse(text: str | None) -> dict[str, _Entry]:
    if not text or not text.strip():
        return {}
    try:
        return _ENTRIES.validate_json(text)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        raise ProviderConfigError(f"LLM_PROVIDERS_JSON: {where}: {first['msg']}") from None
