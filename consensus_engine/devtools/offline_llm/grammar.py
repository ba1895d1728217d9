"""The offline server's stand-in for a llama.cpp grammar build: which schemas it refuses.

A llama.cpp-family server turns the schema of a ``json_object`` request into a GBNF
grammar before it decodes. It refuses a length or item bound of 2000 or more
(``MAX_REPETITION_THRESHOLD``) and regular expressions outside the dialect it knows,
and then answers with the opaque error below. The offline server compiles nothing: it
checks for the same two causes, treating every ``pattern`` as one it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GRAMMAR_ERROR = "Failed to initialize samplers: failed to parse grammar"
"""llama-server's answer (HTTP 400) when a schema's grammar does not build."""

LLAMA_CPP_MAX_REPETITION = 1999
"""The largest ``{m,n}`` bound llama.cpp's grammar parser accepts."""

_REPETITION_BOUNDS = ("minLength", "maxLength", "minItems", "maxItems")


def grammar_problem(schema: Mapping[str, Any], max_repetition: int) -> str | None:
    """Why ``schema`` would not compile with bounds up to ``max_repetition``, or ``None``."""
    for node in _nodes(schema):
        if isinstance(node.get("pattern"), str):
            return f"pattern {node['pattern']!r} is not supported"
        for key in _REPETITION_BOUNDS:
            bound = node.get(key)
            if isinstance(bound, int) and bound > max_repetition:
                return f"{key} {bound} exceeds {max_repetition} repetitions"
    return None


def _nodes(value: Any) -> list[Mapping[str, Any]]:
    """Every object nested in ``value`` (``$defs`` and property maps included)."""
    found: list[Mapping[str, Any]] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            found.append(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found
