"""Turns settings into the plain values the domain and the LLM steps take."""

from __future__ import annotations

from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.personas import DEFAULT_PERSONAS, PersonaSet, load_persona_set
from consensus_engine.settings import Settings


def personas_from_settings(settings: Settings) -> PersonaSet:
    """The configured persona set (``PERSONAS_FILE``), or the five defaults."""
    if settings.personas_file is None:
        return DEFAULT_PERSONAS
    return load_persona_set(
        settings.personas_file,
        min_count=settings.min_persona_count,
        max_count=settings.max_persona_count,
    )


def expand_choice(settings: Settings) -> ModelChoice:
    return ModelChoice(settings.expand_model, settings.expand_temperature)


def review_choice(settings: Settings) -> ModelChoice:
    return ModelChoice(settings.review_model, settings.review_temperature)
