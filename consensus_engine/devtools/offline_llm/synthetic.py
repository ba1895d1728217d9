"""Deterministic, schema-valid stand-in content for the offline server.

Any JSON Schema the server is handed gets an instance that satisfies it
(types, enums, ``$ref``/``$defs``, ``anyOf``, nullable, bounds on numbers,
lengths and item counts). A few field-name rules make our own documents read
plausibly. Every string says ``[synthetic]`` so nobody mistakes it for a model's
opinion, and it quotes the input so different inputs give visibly different output.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

_MAX_DEPTH = 6
_PHRASES = (
    "start with a small pilot and measure",
    "weigh the rollout risk against the benefit",
    "keep the data model simple at first",
    "document the failure modes up front",
    "agree on ownership before building",
    "budget time for testing and review",
    "plan a rollback path for each release",
    "validate the assumptions with real users",
)
_WORDS = re.compile(r"\s+")
_Schema = Mapping[str, Any]


def excerpt(text: str, limit: int = 60) -> str:
    """The most distinctive short piece of a prompt: its longest line, shortened."""
    lines = [_WORDS.sub(" ", line).strip() for line in text.splitlines()]
    best = max(lines, key=len, default="")
    if len(best) <= limit:
        return best or "(empty input)"
    return best[: limit - 1].rsplit(" ", 1)[0] + "…"


def synthetic_text(topic: str, rng: random.Random) -> str:
    """A free-text answer, for requests that ask for no particular format."""
    return f"[synthetic] reply about '{topic}': {rng.choice(_PHRASES)}."


def synthesize(schema: _Schema, *, rng: random.Random, topic: str) -> Any:
    """An instance of ``schema``; the same ``rng`` state always gives the same instance."""
    return _Synthesizer(schema, rng, topic).value(schema, "", 0)


class _Synthesizer:
    def __init__(self, root: _Schema, rng: random.Random, topic: str) -> None:
        self._root = root
        self._rng = rng
        self._topic = topic

    def value(self, node: _Schema, label: str, depth: int) -> Any:
        node = self._resolve(node)
        if "const" in node:
            return node["const"]
        if node.get("enum"):
            return self._rng.choice(list(node["enum"]))
        for key in ("anyOf", "oneOf"):
            if node.get(key):
                return self.value(self._pick_branch(node[key], depth), label, depth)
        if node.get("allOf"):
            merged: dict[str, Any] = {}
            for part in node["allOf"]:
                merged.update(self._resolve(part))
            merged.update((k, v) for k, v in node.items() if k != "allOf")
            return self.value(merged, label, depth)
        kind = self._kind(node, depth)
        if kind == "object":
            return self._object(node, label, depth)
        if kind == "array":
            return self._array(node, label, depth)
        if kind == "number":
            return self._number(node, label)
        if kind == "integer":
            return self._integer(node)
        if kind == "boolean":
            return self._boolean(label)
        if kind == "null":
            return None
        return self._string(node, label)

    def _resolve(self, node: _Schema) -> _Schema:
        """Follow local ``$ref`` pointers; keywords next to a ``$ref`` take precedence."""
        while "$ref" in node:
            target: Any = self._root
            for part in str(node["$ref"]).removeprefix("#/").split("/"):
                if part:
                    target = target[part.replace("~1", "/").replace("~0", "~")]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def _pick_branch(self, branches: Sequence[_Schema], depth: int) -> _Schema:
        solid = [b for b in branches if self._resolve(b).get("type") != "null"]
        if not solid or (len(solid) < len(branches) and self._prefers_null(depth)):
            return {"type": "null"}
        return self._rng.choice(solid)

    def _prefers_null(self, depth: int) -> bool:
        return depth >= _MAX_DEPTH or self._rng.random() < 0.1

    def _kind(self, node: _Schema, depth: int) -> str:
        kind = node.get("type")
        if isinstance(kind, list):
            solid = [k for k in kind if k != "null"]
            if not solid or (len(solid) < len(kind) and self._prefers_null(depth)):
                return "null"
            return str(self._rng.choice(solid))
        if kind is not None:
            return str(kind)
        if "properties" in node:
            return "object"
        return "array" if "items" in node else "string"

    def _object(self, node: _Schema, label: str, depth: int) -> dict[str, Any]:
        properties: Mapping[str, _Schema] = node.get("properties", {})
        return {
            key: self.value(sub, label if key == "text" and label else key, depth + 1)
            for key, sub in properties.items()
        }

    def _array(self, node: _Schema, label: str, depth: int) -> list[Any]:
        low = int(node.get("minItems", 0))
        high = int(node.get("maxItems", low + 4))
        if depth >= _MAX_DEPTH:
            wanted = low
        elif "blocking" in label:
            wanted = 1 if self._rng.random() < 0.2 else 0
        else:
            wanted = self._rng.randint(1, 3)
        count = max(low, min(high, wanted))
        items: _Schema = node.get("items") or {}
        return [self.value(items, f"{label} {i + 1}", depth + 1) for i in range(count)]

    def _string(self, node: _Schema, label: str) -> str:
        name = label.replace("_", " ").strip() or "text"
        if name == "title":
            text = f"[synthetic] {self._topic}"
        elif "effort" in name:
            amount = self._rng.randint(1, 12)
            text = f"[synthetic] roughly {amount} week(s) for a small team"
        else:
            text = f"[synthetic] {name} about '{self._topic}': {self._rng.choice(_PHRASES)}"
        low = int(node.get("minLength", 0))
        high = node.get("maxLength")
        text = text.ljust(low, ".")
        return text if high is None else text[: int(high)]

    def _number(self, node: _Schema, label: str) -> float:
        low, high = _bounds(node, default_low=0.0, default_high=100.0)
        if ("confidence" in label or "score" in label) and low <= 0.55 and high >= 0.95:
            low, high = 0.55, 0.95
        raw = self._rng.uniform(low, high)
        rounded = round(raw, 2)
        return rounded if low <= rounded <= high else raw

    def _integer(self, node: _Schema) -> int:
        low, high = _bounds(node, default_low=0.0, default_high=100.0)
        first, last = math.ceil(low), math.floor(high)
        return self._rng.randint(first, max(first, last))

    def _boolean(self, label: str) -> bool:
        if "security" in label:
            return self._rng.random() < 0.05
        if "blocking" in label:
            return self._rng.random() < 0.15
        return self._rng.random() < 0.5


def _bounds(node: _Schema, *, default_low: float, default_high: float) -> tuple[float, float]:
    """Inclusive range inside the schema's bounds (exclusive ones nudged inwards)."""
    low = float(node.get("minimum", default_low))
    high = float(node.get("maximum", max(default_high, low + default_high)))
    if "exclusiveMinimum" in node:
        low = float(node["exclusiveMinimum"]) + _nudge(node)
    if "exclusiveMaximum" in node:
        high = float(node["exclusiveMaximum"]) - _nudge(node)
    if "minimum" not in node and "exclusiveMinimum" not in node and high < low:
        low = high - default_high
    return low, max(low, high)


def _nudge(node: _Schema) -> float:
    return 1.0 if node.get("type") == "integer" else 1e-6
