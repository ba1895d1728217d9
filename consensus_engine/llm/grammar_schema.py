"""The schema that grammar-constrained local servers get: our strict schema, minus costly bounds.

llama.cpp-family servers (llama-server, llama-cpp-python, and whatever embeds their
JSON-schema-to-grammar converter) compile the schema sent as
``{"type": "json_object", "schema": ...}`` into a GBNF grammar and sample only tokens
the grammar allows. A bound such as ``maxLength: 20000`` becomes a repetition
``char{1,20000}``, which llama.cpp unrolls into one rule per allowed repetition and
refuses outright from 2000 on (its ``MAX_REPETITION_THRESHOLD``: "number of repetitions
exceeds sane defaults", reported to the client as "failed to parse grammar"); a
llama-cpp-python server sent our strict schema as it is died on it.

So :func:`compilable_schema` keeps every constraint that compiles into a small grammar
(types, ``enum``/``const``, ``required``, ``additionalProperties``, numeric ranges, and
length or item bounds up to :data:`MAX_COMPILED_REPETITION`) and drops the rest. Nothing
is lost: the answer is validated against the full model with pydantic afterwards, and the
complete schema still travels in the prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_COMPILED_REPETITION = 512
"""The largest length or item bound left for the grammar to enforce.

A bound of N costs about N grammar rules, so 512 stays at a quarter of llama.cpp's
refusal point (2000) with room for several such bounds in one schema, while keeping the
bounds worth enforcing during decoding: ``minLength: 1`` (an empty string was what tiny
models most often produced), short titles and the item caps of our lists. The long text
limits (2000 and 20000 characters) are left to validation; the output token cap bounds
them in practice anyway."""

_REPETITION_BOUNDS = ("minLength", "maxLength", "minItems", "maxItems")
# Regular expressions and formats compile only where a converter knows that dialect or
# format; a miss fails the whole request, and validation checks both afterwards anyway.
_UNCOMPILED = frozenset({"pattern", "format"})
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains")


def compilable_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` that a grammar builder can compile; ``schema`` is not changed.

    ``$ref`` pointers are kept as they are and the ``$defs`` they point into are
    converted alike, so a pointer still resolves and a recursive model still compiles.
    """
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNCOMPILED or (key in _REPETITION_BOUNDS and _too_costly(value)):
            continue
        converted[key] = _converted_value(key, value)
    return converted


def _converted_value(key: str, value: Any) -> Any:
    """Subschemas are converted; everything else (``enum``, ``required``…) is copied."""
    if key in _SCHEMA_MAPS and isinstance(value, Mapping):
        return {name: _subschema(sub) for name, sub in value.items()}
    if key in _SCHEMA_LISTS and isinstance(value, list):
        return [_subschema(sub) for sub in value]
    if key in _SCHEMA_VALUES:
        return _subschema(value)
    return value


def _subschema(value: Any) -> Any:
    # A subschema may also be a boolean (``additionalProperties: false``).
    return compilable_schema(value) if isinstance(value, Mapping) else value


def _too_costly(bound: Any) -> bool:
    return not isinstance(bound, int) or bound > MAX_COMPILED_REPETITION
