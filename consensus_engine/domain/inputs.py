"""Checks on what users submit, shared by the API, the CLI and the pipeline.

Limits come from settings and are passed in, so the domain stays free of configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from consensus_engine.domain.prompts import ExtraContext


class InputError(ValueError):
    """User input is unusable; the message says which field and why."""


def validate_idea(idea: object, *, max_length: int) -> str:
    """The idea, stripped; empty, non-text or oversized ideas are refused."""
    if not isinstance(idea, str):
        raise InputError(f"idea must be a string, got {type(idea).__name__}")
    text = idea.strip()
    if not text:
        raise InputError("idea must not be empty")
    if len(text) > max_length:
        raise InputError(f"idea is {len(text)} characters long; the limit is {max_length}")
    return text


def validate_extra_context(extra_context: object, *, max_length: int) -> ExtraContext:
    """Context as text or a JSON object, measured as it will be stored."""
    if extra_context is None:
        return None
    if isinstance(extra_context, str):
        size = len(extra_context.strip())
        value: ExtraContext = extra_context.strip() or None
    elif isinstance(extra_context, Mapping):
        try:
            size = len(json.dumps(extra_context, ensure_ascii=False))
        except (TypeError, ValueError) as error:
            raise InputError(f"extra_context is not JSON-serialisable: {error}") from None
        value = extra_context
    else:
        raise InputError(
            f"extra_context must be a string or an object, got {type(extra_context).__name__}"
        )
    if size > max_length:
        raise InputError(f"extra_context is {size} characters long; the limit is {max_length}")
    return value
