"""How a run's panel deliberates: who reviews with which model, how many rounds, and
whether a chair writes a synthesis. Chosen when the run is submitted and stored with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.personas import Persona, PersonaSet
from consensus_engine.domain.runs import step_names

MAX_ROUNDS = 2


@dataclass(frozen=True)
class Council:
    """The rounds of review, and the chair (``None``: no chair step)."""

    rounds: int = 1
    chair: ModelChoice | None = None
    chair_fallback: str | None = None
    """The model the chair step turns to when the chair's model fails."""

    def __post_init__(self) -> None:
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise ValueError(f"a run has 1 or {MAX_ROUNDS} review rounds, not {self.rounds}")

    def steps(self, personas: PersonaSet) -> list[str]:
        """Every step of a run with this council, in display order."""
        return step_names(list(personas.ids), rounds=self.rounds, chair=self.chair is not None)

    def to_parameters(self) -> dict[str, Any]:
        """What a run stores in its parameters."""
        chair = None
        if self.chair is not None:
            chair = {
                "model": self.chair.model,
                "temperature": self.chair.temperature,
                "fallback_model": self.chair_fallback,
            }
        return {"review_rounds": self.rounds, "chair": chair}

    @classmethod
    def of(cls, parameters: Mapping[str, Any]) -> Council:
        """The council a run stored (runs from before councils had one round, no chair)."""
        chair = parameters.get("chair")
        if not chair:
            return cls(rounds=int(parameters.get("review_rounds", 1)))
        return cls(
            rounds=int(parameters.get("review_rounds", 1)),
            chair=ModelChoice(chair["model"], chair.get("temperature")),
            chair_fallback=chair.get("fallback_model"),
        )


def review_models(
    personas: PersonaSet, *, run_wide: str | None, per_persona: Mapping[str, str] | None
) -> PersonaSet:
    """The personas with the models a request asks for: a model named for one persona
    wins, then the request's review model for all, then the persona's own; a persona left
    with none reviews with the run's review model."""
    models = dict.fromkeys(personas.ids, run_wide) if run_wide else {}
    models.update(per_persona or {})
    return personas.with_models({pid: model for pid, model in models.items() if model})


def persona_choice(persona: Persona, review: ModelChoice) -> ModelChoice:
    """The model that writes ``persona``'s reviews: its own, else the run's ``review``."""
    return review if persona.model is None else ModelChoice(persona.model, review.temperature)
