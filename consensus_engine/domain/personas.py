"""The reviewers: who they are, how much their opinion weighs, and which sections they read closely.

A :class:`PersonaSet` is validated once, when it is built, so the rest of the system can rely
on unique ids and weights that sum to 1. A run stores the set it used (:meth:`PersonaSet.to_dict`)
so that its decision can be recomputed later even if the defaults change.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from consensus_engine.domain.schemas import PROPOSAL_SECTIONS

PERSONA_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,49}$")
WEIGHT_TOLERANCE = 1e-6
MAX_NAME_LENGTH = 100
MAX_FOCUS_LENGTH = 500
MAX_INSTRUCTIONS_LENGTH = 4_000
DEFAULT_MIN_COUNT = 1
DEFAULT_MAX_COUNT = 50

_REQUIRED_KEYS = frozenset({"id", "name", "weight", "focus", "instructions"})
_OPTIONAL_KEYS = frozenset({"cares_about", "security_veto", "model"})
MAX_MODEL_LENGTH = 200


class PersonaConfigError(ValueError):
    """A persona or persona set is invalid; the message says exactly what to fix."""


@dataclass(frozen=True)
class Persona:
    """One reviewer. ``cares_about`` lists the proposal sections whose change makes it re-review."""

    id: str
    name: str
    weight: float
    focus: str
    instructions: str
    cares_about: tuple[str, ...] = PROPOSAL_SECTIONS
    security_veto: bool = False
    model: str | None = None
    """The model that writes this persona's review (``None``: the run's review model)."""

    def __post_init__(self) -> None:
        label = f"persona {self.id!r}"
        if not isinstance(self.id, str) or not PERSONA_ID_PATTERN.fullmatch(self.id):
            raise PersonaConfigError(
                f"invalid persona id {self.id!r}: must match {PERSONA_ID_PATTERN.pattern}"
            )
        _check_text(label, "name", self.name, MAX_NAME_LENGTH)
        _check_text(label, "focus", self.focus, MAX_FOCUS_LENGTH)
        _check_text(label, "instructions", self.instructions, MAX_INSTRUCTIONS_LENGTH)
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise PersonaConfigError(f"{label}: weight must be a number, got {weight!r}")
        if not math.isfinite(weight) or not 0.0 < weight <= 1.0:
            raise PersonaConfigError(f"{label}: weight must be in (0, 1], got {weight!r}")
        if not isinstance(self.security_veto, bool):
            raise PersonaConfigError(f"{label}: security_veto must be true or false")
        if self.model is not None:
            _check_text(label, "model", self.model, MAX_MODEL_LENGTH)
        if isinstance(self.cares_about, str) or not isinstance(self.cares_about, Iterable):
            raise PersonaConfigError(f"{label}: cares_about must be a list of section names")
        cares = tuple(self.cares_about)
        unknown = [s for s in cares if s not in PROPOSAL_SECTIONS]
        if unknown:
            raise PersonaConfigError(
                f"{label}: unknown section(s) in cares_about: {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(PROPOSAL_SECTIONS)}"
            )
        if len(set(cares)) != len(cares):
            raise PersonaConfigError(f"{label}: cares_about lists a section twice")
        object.__setattr__(self, "weight", float(weight))
        object.__setattr__(self, "cares_about", cares)

    def with_weight(self, weight: float) -> Persona:
        return replace(self, weight=weight)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "weight": self.weight,
            "focus": self.focus,
            "instructions": self.instructions,
            "cares_about": list(self.cares_about),
            "security_veto": self.security_veto,
        }
        if self.model is not None:
            data["model"] = self.model
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Persona:
        """Build from JSON; unknown keys are errors so a typo never silently drops a setting."""
        if not isinstance(data, Mapping):
            raise PersonaConfigError(f"each persona must be a JSON object, got {data!r}")
        label = f"persona {data.get('id', '?')!r}"
        unknown = sorted(set(data) - _REQUIRED_KEYS - _OPTIONAL_KEYS)
        if unknown:
            raise PersonaConfigError(
                f"{label}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                f"{', '.join(sorted(_REQUIRED_KEYS | _OPTIONAL_KEYS))}"
            )
        missing = sorted(_REQUIRED_KEYS - set(data))
        if missing:
            raise PersonaConfigError(f"{label}: missing key(s) {', '.join(map(repr, missing))}")
        cares = data.get("cares_about", PROPOSAL_SECTIONS)
        if not isinstance(cares, list | tuple):
            raise PersonaConfigError(f"{label}: cares_about must be a list of section names")
        return cls(
            id=data["id"],
            name=data["name"],
            weight=data["weight"],
            focus=data["focus"],
            instructions=data["instructions"],
            cares_about=tuple(cares),
            security_veto=data.get("security_veto", False),
            model=data.get("model"),
        )


def _check_text(label: str, field: str, value: object, max_length: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise PersonaConfigError(f"{label}: {field} must be a non-empty string")
    if len(value) > max_length:
        raise PersonaConfigError(f"{label}: {field} is longer than {max_length} characters")


def _format_total(total: float) -> str:
    """Short but exact enough to show why a sum like 1.000002 fails the 1e-6 tolerance."""
    return repr(round(total, 9))


class PersonaSet:
    """An ordered, validated collection of personas; the order is the display and step order."""

    __slots__ = ("_by_id", "_personas")

    def __init__(
        self,
        personas: Iterable[Persona],
        *,
        min_count: int = DEFAULT_MIN_COUNT,
        max_count: int = DEFAULT_MAX_COUNT,
    ) -> None:
        items = tuple(personas)
        if not min_count <= len(items) <= max_count:
            raise PersonaConfigError(
                f"a persona set needs between {min_count} and {max_count} personas, "
                f"got {len(items)}"
            )
        seen: set[str] = set()
        for persona in items:
            if persona.id in seen:
                raise PersonaConfigError(f"duplicate persona id {persona.id!r}")
            seen.add(persona.id)
        total = math.fsum(p.weight for p in items)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise PersonaConfigError(
                f"weights sum to {_format_total(total)}, must sum to 1.0 "
                f"(within {WEIGHT_TOLERANCE:g})"
            )
        self._personas = items
        self._by_id = {p.id: p for p in items}

    @property
    def personas(self) -> tuple[Persona, ...]:
        return self._personas

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self._personas)

    @property
    def weights(self) -> dict[str, float]:
        return {p.id: p.weight for p in self._personas}

    def __iter__(self) -> Iterator[Persona]:
        return iter(self._personas)

    def __len__(self) -> int:
        return len(self._personas)

    def __contains__(self, persona_id: object) -> bool:
        return persona_id in self._by_id

    def __getitem__(self, persona_id: str) -> Persona:
        try:
            return self._by_id[persona_id]
        except KeyError:
            raise PersonaConfigError(self._unknown_message(persona_id)) from None

    def get(self, persona_id: str) -> Persona | None:
        return self._by_id.get(persona_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PersonaSet) and self._personas == other._personas

    def __hash__(self) -> int:
        return hash(self._personas)

    def __repr__(self) -> str:
        return f"PersonaSet({', '.join(f'{p.id}={p.weight:g}' for p in self._personas)})"

    def _unknown_message(self, persona_id: str) -> str:
        return f"unknown persona id {persona_id!r}; known: {', '.join(self.ids)}"

    def select(
        self,
        ids: Sequence[str],
        weights: Mapping[str, float] | None = None,
        *,
        min_count: int = DEFAULT_MIN_COUNT,
        max_count: int = DEFAULT_MAX_COUNT,
    ) -> PersonaSet:
        """The subset a run uses, in this set's order: the one rule for choosing personas.

        Without ``weights`` the chosen personas keep their relative weights, rescaled to sum
        to 1. With ``weights`` every chosen id needs an explicit weight and they must sum to 1.
        The ids usually come from a client, so an unknown one is counted, never quoted.
        """
        if isinstance(ids, str):
            raise PersonaConfigError("ids must be a list of persona ids, not a string")
        chosen = list(ids)
        unknown = sum(1 for persona_id in chosen if persona_id not in self._by_id)
        if unknown:
            raise PersonaConfigError(
                f"{unknown} unknown persona id(s); known: {', '.join(self.ids)}"
            )
        duplicates = sorted({i for i in chosen if chosen.count(i) > 1})
        if duplicates:
            raise PersonaConfigError(f"persona id(s) chosen twice: {', '.join(duplicates)}")
        wanted = set(chosen)
        subset = [p for p in self._personas if p.id in wanted]
        if weights is None:
            total = math.fsum(p.weight for p in subset)
            new_weights = {p.id: p.weight / total for p in subset} if subset else {}
        else:
            extra = sorted(set(weights) - wanted)
            if extra:
                raise PersonaConfigError(
                    f"weights given for persona(s) not selected: {', '.join(extra)}"
                )
            lacking = [p.id for p in subset if p.id not in weights]
            if lacking:
                raise PersonaConfigError(f"no weight given for persona(s): {', '.join(lacking)}")
            new_weights = dict(weights)
        return PersonaSet(
            (p.with_weight(new_weights[p.id]) for p in subset),
            min_count=min_count,
            max_count=max_count,
        )

    def with_models(self, models: Mapping[str, str]) -> PersonaSet:
        """This set with the named personas' models replaced (their ids must be in it)."""
        unknown = sorted(set(models) - set(self._by_id))
        if unknown:
            raise PersonaConfigError(
                f"models given for persona(s) not in the run: {', '.join(unknown)}"
            )
        return PersonaSet(
            (replace(p, model=models.get(p.id, p.model)) for p in self._personas),
            min_count=len(self._personas),
            max_count=len(self._personas),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"personas": [p.to_dict() for p in self._personas]}

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        min_count: int = DEFAULT_MIN_COUNT,
        max_count: int = DEFAULT_MAX_COUNT,
    ) -> PersonaSet:
        """Inverse of :meth:`to_dict`; also the format of a persona file."""
        if not isinstance(data, Mapping):
            raise PersonaConfigError('a persona set must be a JSON object {"personas": [...]}')
        unknown = sorted(set(data) - {"personas"})
        if unknown:
            raise PersonaConfigError(
                f"unknown key(s) {', '.join(map(repr, unknown))}; a persona set has only 'personas'"
            )
        items = data.get("personas")
        if not isinstance(items, list):
            raise PersonaConfigError("'personas' must be a list of persona objects")
        return cls(
            (Persona.from_dict(item) for item in items), min_count=min_count, max_count=max_count
        )


def load_persona_set(path: Path | str, *, min_count: int, max_count: int) -> PersonaSet:
    """Read a custom persona set from a JSON file in the :meth:`PersonaSet.to_dict` format."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise PersonaConfigError(f"cannot read persona file {source}: {error.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise PersonaConfigError(
            f"persona file {source} is not valid JSON: {error.msg} "
            f"(line {error.lineno}, column {error.colno})"
        ) from None
    try:
        return PersonaSet.from_dict(data, min_count=min_count, max_count=max_count)
    except PersonaConfigError as error:
        raise PersonaConfigError(f"persona file {source}: {error}") from None


DEFAULT_PERSONAS = PersonaSet(
    (
        Persona(
            id="architect",
            name="Architect",
            weight=0.25,
            focus="system design, scalability and long-term maintainability",
            instructions=(
                "Judge whether the proposed solution hangs together as a system: components, "
                "data flow, interfaces and where state lives. Ask how it behaves at ten times "
                "the expected load and who will maintain it in two years. Prefer the simplest "
                "design that meets the stated problem, and name concrete structural changes "
                "rather than general advice."
            ),
            cares_about=(
                "problem_statement",
                "proposed_solution",
                "assumptions",
                "scope_non_goals",
            ),
        ),
        Persona(
            id="critic",
            name="Critic",
            weight=0.25,
            focus="risks, edge cases and failure modes",
            instructions=(
                "Look for what will go wrong: unstated assumptions, edge cases, partial "
                "failures, operational surprises and ways the solution could miss the problem "
                "it claims to solve. Rank the risks by likelihood and impact, and for each "
                "serious one say what evidence or change would retire it. Be rigorous, not "
                "contrarian: do not invent problems the proposal already handles."
            ),
            cares_about=PROPOSAL_SECTIONS,
        ),
        Persona(
            id="optimist",
            name="Optimist",
            weight=0.15,
            focus="strengths, feasibility and opportunities",
            instructions=(
                "Identify what is genuinely good about the idea and what makes it achievable "
                "with the stated resources. Point out cheap wins, a smaller first version that "
                "delivers value early, and opportunities the author has not claimed yet. Stay "
                "honest: if the idea is not feasible, say so and lower your score."
            ),
            cares_about=("summary", "problem_statement", "proposed_solution"),
        ),
        Persona(
            id="security_guardian",
            name="Security Guardian",
            weight=0.20,
            focus="security, data protection, authentication and authorisation, compliance",
            instructions=(
                "Review the proposal as an attacker and as an auditor. Check how users and "
                "services authenticate, what each may access, how personal and secret data is "
                "stored, transmitted and deleted, and which regulations apply. Mark a blocking "
                "issue security_critical only when shipping as described would expose data, "
                "allow unauthorised actions or break a legal obligation; such an issue vetoes "
                "the proposal."
            ),
            cares_about=("proposed_solution", "assumptions", "scope_non_goals"),
            security_veto=True,
        ),
        Persona(
            id="user_advocate",
            name="User Advocate",
            weight=0.15,
            focus="user experience, accessibility and user value",
            instructions=(
                "Speak for the people who will use the result. Ask who they are, what problem "
                "of theirs this solves, and what their first five minutes look like. Check "
                "accessibility (keyboard, screen readers, contrast, plain language), error "
                "messages and recovery paths. Flag anything that trades user value for "
                "internal convenience."
            ),
            cares_about=("summary", "problem_statement", "proposed_solution", "scope_non_goals"),
        ),
    )
)
