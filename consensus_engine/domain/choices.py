"""Which model a step uses: chosen per run, stored with it, overridable per revision."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelChoice:
    """A model and its temperature (``None``: not sent, the provider's default)."""

    model: str
    temperature: float | None

    def overridden(self, model: str | None, temperature: float | None) -> ModelChoice:
        """This choice with what a request spells out replacing it."""
        return ModelChoice(
            model or self.model, self.temperature if temperature is None else temperature
        )
