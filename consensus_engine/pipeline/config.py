"""Turns settings into the plain values the domain and the LLM steps take."""

from __future__ import annotations

from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.council import Council
from consensus_engine.domain.personas import DEFAULT_PERSONAS, PersonaSet, load_persona_set
from consensus_engine.llm.catalogue import CatalogueError, ModelCatalogue
from consensus_engine.settings import Settings


def personas_from_settings(settings: Settings) -> PersonaSet:
    """The configured persona set (``PERSONAS_FILE``), or the five defaults. A model a
    persona names must be in the model catalogue (``CatalogueError`` otherwise)."""
    if settings.personas_file is None:
        return DEFAULT_PERSONAS
    personas = load_persona_set(
        settings.personas_file,
        min_count=settings.min_persona_count,
        max_count=settings.max_persona_count,
    )
    catalogue = ModelCatalogue.from_settings(settings)
    for persona in personas:
        if persona.model is not None and catalogue.get(persona.model) is None:
            raise CatalogueError(
                f"PERSONAS_FILE: persona {persona.id!r} names {persona.model}, which is not "
                f"in the model catalogue; allowed: {', '.join(catalogue.names)}"
            )
    return personas


def council_from_settings(settings: Settings) -> Council:
    """The council a run gets when it asks for nothing: ``REVIEW_ROUNDS``, and a chair
    when ``CHAIR_MODEL`` is set."""
    if settings.chair_model is None:
        return Council(rounds=settings.review_rounds)
    return Council(
        rounds=settings.review_rounds,
        chair=ModelChoice(settings.chair_model, settings.chair_temperature),
        chair_fallback=settings.chair_fallback_model,
    )


def expand_choice(settings: Settings) -> ModelChoice:
    return ModelChoice(settings.expand_model, settings.expand_temperature)


def review_choice(settings: Settings) -> ModelChoice:
    return ModelChoice(settings.review_model, settings.review_temperature)
