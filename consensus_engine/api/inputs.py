"""Reading what a client sent: the domain's checks, turned into 422s that name the field.

Messages never quote the client's value, which may be large or private.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from consensus_engine.api.errors import ApiError, invalid
from consensus_engine.api.schemas import ModelOverrides, SubmitRunRequest
from consensus_engine.api.state import ApiState
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.council import Council, review_models
from consensus_engine.domain.inputs import InputError, validate_extra_context, validate_idea
from consensus_engine.domain.personas import PersonaConfigError, PersonaSet
from consensus_engine.domain.prompts import ExtraContext
from consensus_engine.domain.revisions import edit_as_json
from consensus_engine.llm.catalogue import UnknownModelError
from consensus_engine.pipeline.config import council_from_settings
from consensus_engine.settings import Settings

MAX_JSON_DEPTH = 32
"""Deeper JSON than any proposal or context needs; deeper input only costs the server."""


def storable(field: str, value: object, *, depth: int = 0, part: str = "body") -> None:
    """Refuse what PostgreSQL cannot store (NUL characters, lone surrogates, NaN) and JSON
    nested deeper than ``MAX_JSON_DEPTH``, as a 422 rather than a server error. ``value``
    is text or parsed JSON; ``part`` says where the request carried it."""
    if depth > MAX_JSON_DEPTH:
        raise invalid(field, f"{field} is nested more than {MAX_JSON_DEPTH} levels deep", part=part)
    if isinstance(value, str):
        if "\x00" in value:
            raise invalid(field, f"{field} must not contain NUL characters", part=part)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid(field, f"{field} is not valid Unicode text", part=part) from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise invalid(field, f"{field} must not contain NaN or infinite numbers", part=part)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(field, key, depth=depth + 1, part=part)
            storable(field, item, depth=depth + 1, part=part)
    elif isinstance(value, list):
        for item in value:
            storable(field, item, depth=depth + 1, part=part)


def storable_edit(field: str, edited: str | dict[str, Any] | None) -> None:
    """:func:`storable` for an edited proposal, and for the JSON its text holds (see
    ``edit_as_json``): ``\\u0000`` is valid JSON, and a NUL once parsed."""
    storable(field, edited)
    if not isinstance(edited, str):
        return
    try:
        parsed = edit_as_json(edited)
    except RecursionError:
        raise invalid(field, f"{field} is nested too deeply") from None
    except ValueError:
        return  # not JSON after all: the revision's own check words that
    storable(field, parsed)


def idea_and_context(
    idea: str, extra_context: str | dict[str, Any] | None, settings: Settings
) -> tuple[str, ExtraContext]:
    """The idea and its context as the pipeline takes them, within the configured limits
    and storable."""
    storable("idea", idea)
    storable("extra_context", extra_context)
    try:
        text = validate_idea(idea, max_length=settings.max_idea_length)
    except InputError as error:
        raise invalid("idea", str(error)) from None
    try:
        context = validate_extra_context(
            extra_context, max_length=settings.max_extra_context_length
        )
    except InputError as error:
        raise invalid("extra_context", str(error)) from None
    return text, context


def selected_personas(state: ApiState, ids: Sequence[str] | None) -> PersonaSet:
    """The configured personas a request names (all of them when it names none).

    The rule is the domain's (:meth:`PersonaSet.select`); every route that takes a persona
    list answers the same mistake with the same 422.
    """
    if ids is None:
        return state.personas
    settings = state.settings
    try:
        return state.personas.select(
            ids, min_count=settings.min_persona_count, max_count=settings.max_persona_count
        )
    except PersonaConfigError as error:
        raise invalid("personas", str(error)) from None


def catalogued_models(state: ApiState, body: ModelOverrides) -> None:
    """A 422 ``UNKNOWN_MODEL`` listing the allowed models when the request names a model
    outside the catalogue, before anything is stored."""
    for loc, model in body.named_models():
        if model is None:
            continue
        try:
            state.catalogue.require(model)
        except UnknownModelError as error:
            allowed = list(error.allowed)
            field = ".".join(loc)
            message = f"{field} is not a model this deployment allows: {', '.join(allowed)}"
            details = [
                {
                    "loc": ["body", *loc],
                    "msg": message,
                    "type": "unknown_model",
                    "allowed": allowed,
                }
            ]
            raise ApiError(422, "UNKNOWN_MODEL", message, details=details) from None


def panel(state: ApiState, body: SubmitRunRequest) -> tuple[PersonaSet, Council]:
    """The personas (with the models the request gives them) and the council it asks for,
    the deployment's defaults filling in what it leaves out."""
    settings = state.settings
    personas = selected_personas(state, body.personas)
    try:
        personas = review_models(
            personas, run_wide=body.review_model, per_persona=body.persona_models
        )
    except PersonaConfigError as error:
        raise invalid("persona_models", str(error)) from None
    default = council_from_settings(settings)
    chair = default.chair
    if body.chair is False:
        chair = None
    elif body.chair_model is not None:
        chair = ModelChoice(body.chair_model, settings.chair_temperature)
    elif body.chair and chair is None:
        raise invalid("chair", "no chair model is configured (CHAIR_MODEL); name chair_model")
    council = Council(
        rounds=body.review_rounds or default.rounds,
        chair=chair,
        chair_fallback=default.chair_fallback if chair is not None else None,
    )
    return personas, council


def model_choices(
    body: ModelOverrides, expand: ModelChoice, review: ModelChoice
) -> tuple[ModelChoice, ModelChoice]:
    """The expand and review models the request asks for; what it leaves out is the default's."""
    return (
        expand.overridden(body.expand_model, body.expand_temperature),
        review.overridden(body.review_model, body.review_temperature),
    )
