"""What one LLM call cost and how it ended, kept so every attempt can be stored and billed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Generic, Literal, TypeVar

ApiMode = Literal["auto", "responses", "chat", "chat_json_object"]
"""The configured mode; ``auto`` resolves to one of the wire modes per call."""

WireMode = Literal["responses", "chat", "chat_json_object"]
"""How a request actually went over the wire."""


class LlmCallOutcome(StrEnum):
    """How one LLM request ended; stored as is, one row per attempt."""

    SUCCESS = "success"
    REPAIRED = "repaired"
    INVALID_OUTPUT = "invalid_output"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    AUTH_ERROR = "auth_error"
    BAD_REQUEST = "bad_request"
    ERROR = "error"


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One HTTP attempt: failed attempts are recorded too, because they may still be billed."""

    step: str
    model: str
    mode: WireMode
    attempt: int
    outcome: LlmCallOutcome
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    priced: bool
    latency_ms: float
    request_id: str | None = None
    error_code: str | None = None
    call_id: uuid.UUID | None = None
    """The id the call had at its gate (:class:`~consensus_engine.llm.gate.CallIntent`)."""
    provider: str = "default"
    """The provider the call went to (``llm/providers.py``)."""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (cost as a float) for logs and JSONB columns."""
        return {
            "step": self.step,
            "model": self.model,
            "provider": self.provider,
            "mode": self.mode,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": float(self.cost_usd),
            "priced": self.priced,
            "latency_ms": self.latency_ms,
            "request_id": self.request_id,
            "error_code": self.error_code,
        }


@dataclass(frozen=True, slots=True)
class Generation(Generic[T]):
    """A validated value plus every call it took to get it."""

    value: T
    calls: list[CallRecord]
    mode: WireMode

    @property
    def input_tokens(self) -> int:
        return sum(call.input_tokens for call in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(call.output_tokens for call in self.calls)

    @property
    def cost_usd(self) -> Decimal:
        return sum((call.cost_usd for call in self.calls), Decimal(0))

    @property
    def latency_ms(self) -> float:
        return round(sum(call.latency_ms for call in self.calls), 1)

    @property
    def priced(self) -> bool:
        """False when some call used a model missing from the price table (its cost counts 0)."""
        return all(call.priced for call in self.calls)
