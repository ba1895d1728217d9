"""The seam before every LLM request: whatever must agree to a call first.

The client asks its gate before each request it sends (the first, each repair, the one
after a fallback) and settles afterwards with the tokens the answer reported, so that a
gate that counts (the shared rate limits, a tenant's budget) can correct its estimate.
A gate that says "not now" raises :class:`~consensus_engine.llm.errors.LLMCapacityWait`,
one that says "never" some other :class:`~consensus_engine.llm.errors.LLMError`: no
request was made, so none is recorded.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from consensus_engine.llm.provider_limits import ProviderLimits


def estimate_tokens(text: str) -> int:
    """About four characters a token: an estimate made before the provider counts."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True, slots=True)
class CallIntent:
    """One request about to be sent."""

    model: str
    tenant: str | None
    input_tokens: int
    """Estimated from the size of the prompt and the schema."""
    max_output_tokens: int
    patience: float = 0.0
    """The longest the caller will wait in the gate for room; past it, ``LLMCapacityWait``."""
    call_id: uuid.UUID = field(default_factory=uuid.uuid4)
    """The call's id, which its :class:`~consensus_engine.llm.records.CallRecord` carries."""

    @property
    def tokens(self) -> int:
        """The most the call can use: what a provider counts against its limit up front."""
        return self.input_tokens + self.max_output_tokens


class Admission(Protocol):
    def settle(
        self, input_tokens: int, output_tokens: int, provider: ProviderLimits | None = None
    ) -> None:
        """The request ended: the tokens its answer reported (0 and 0 when it failed) and
        what the provider's headers said about its limits."""


class CallGate(Protocol):
    def admit(self, intent: CallIntent) -> Admission:
        """Let the call go (and say how it went later), or raise an ``LLMError``
        (``LLMCapacityWait``: not now)."""


class _Unconditional:
    def settle(
        self, input_tokens: int, output_tokens: int, provider: ProviderLimits | None = None
    ) -> None:
        return None


UNCONDITIONAL: Admission = _Unconditional()
"""What a gate with nothing to count hands out."""


class OpenGate:
    """Admits every call at once: the client's gate when it is given none."""

    def admit(self, intent: CallIntent) -> Admission:
        return UNCONDITIONAL


class Gates:
    """Several gates as one: a call passes each in turn. When one refuses, those it
    already passed are settled as unused, since no request is sent."""

    def __init__(self, *gates: CallGate) -> None:
        self._gates = gates

    def admit(self, intent: CallIntent) -> Admission:
        admitted: list[Admission] = []
        try:
            for gate in self._gates:
                admitted.append(gate.admit(intent))
        except BaseException:
            for admission in admitted:
                admission.settle(0, 0)
            raise
        return _All(admitted)


@dataclass(frozen=True, slots=True)
class _All:
    admissions: Sequence[Admission]

    def settle(
        self, input_tokens: int, output_tokens: int, provider: ProviderLimits | None = None
    ) -> None:
        for admission in self.admissions:
            admission.settle(input_tokens, output_tokens, provider)
