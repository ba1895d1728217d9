"""What every LLM call of this deployment passes first: the model's shared rate limit,
then the tenant's budget. Workers and the API's synchronous endpoints build it here.

The rate limit comes first: a call it sends away to wait has then held nothing against
the budget. The time each call spends there is observed
(``consensus_llm_rate_limit_wait_seconds``).
"""

from __future__ import annotations

import time
from collections.abc import Container

from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db.budget_holds import DatabaseHolds
from consensus_engine.db.rate_limits import DatabaseBuckets
from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.llm.errors import LLMCapacityWait
from consensus_engine.llm.gate import Admission, CallGate, CallIntent, Gates
from consensus_engine.llm.rate_limits import RateLimitGate
from consensus_engine.observability.metrics import bounded, pipeline_metrics
from consensus_engine.pipeline.budget_gate import BudgetGate
from consensus_engine.settings import Settings

HOLD_MARGIN_SECONDS = 60.0
"""How long a budget hold outlives the work whose call it is, for the call to be recorded."""


def call_gate(
    settings: Settings,
    sessions: sessionmaker[Session],
    buckets: DatabaseBuckets,
    *,
    within_seconds: float,
) -> CallGate:
    """``within_seconds``: the longest the work making a call may take (a step's limit)."""
    catalogue = ModelCatalogue.from_settings(settings)
    return Gates(
        TimedGate(RateLimitGate(buckets, catalogue), models=settings.metric_models),
        BudgetGate(
            DatabaseHolds(sessions),
            settings.budgets,
            catalogue,
            hold_seconds=within_seconds + HOLD_MARGIN_SECONDS,
        ),
    )


class TimedGate:
    """A gate whose every answer is observed: how long the call spent there, and whether it
    was let through or sent away to wait (``models``: the model labels allowed)."""

    def __init__(self, gate: CallGate, *, models: Container[str]) -> None:
        self._gate = gate
        self._models = models

    def admit(self, intent: CallIntent) -> Admission:
        started = time.monotonic()
        try:
            admission = self._gate.admit(intent)
        except LLMCapacityWait:
            self._observe(intent, started, admitted=False)
            raise
        self._observe(intent, started, admitted=True)
        return admission

    def _observe(self, intent: CallIntent, started: float, *, admitted: bool) -> None:
        pipeline_metrics().rate_limit_wait(
            model=bounded(intent.model, self._models),
            admitted=admitted,
            seconds=time.monotonic() - started,
        )
