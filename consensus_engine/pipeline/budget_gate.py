"""Tenant budgets before each LLM call: a call goes only if its worst case fits.

The worst case is the call's prompt estimate and its whole output cap at the model's
uncached prices; it is held against the tenant's budget (:class:`HoldStore`) while the
call is in flight, then replaced by what the call cost. So however many calls a tenant
has in flight, in however many processes, its spend stays within its limits. A call that
would cross a limit is refused for good (:class:`CallOverBudget`): a worker fails the
run with ``budget_exceeded``, keeping what it finished; a synchronous request answers
429. Waiting would not help before the limit resets, and resetting is the budget's to do.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from consensus_engine.db.types import utcnow
from consensus_engine.domain.budgets import Budget, Budgets, Hold, Standing
from consensus_engine.llm import LLMPermanentError
from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.llm.gate import UNCONDITIONAL, Admission, CallIntent
from consensus_engine.llm.provider_limits import ProviderLimits

logger = logging.getLogger(__name__)


class CallOverBudget(LLMPermanentError):
    """No request was sent: its worst case would take the tenant past ``standing``'s limit."""

    code = "budget_exceeded"

    def __init__(self, standing: Standing) -> None:
        super().__init__(f"this call would cross the tenant's budget: {standing}")
        self.standing = standing


class HoldStore(Protocol):
    """Where holds live; every process that calls the LLM for a tenant must share it."""

    def reserve(self, hold: Hold, budget: Budget, at: datetime) -> Standing | None:
        """Keep ``hold``, or name the limit it would cross in the periods containing ``at``."""

    def settle(self, call_id: uuid.UUID, usd: Decimal, tokens: int) -> None:
        """The call cost ``usd`` and ``tokens`` in the end."""


class BudgetGate:
    """A :class:`~consensus_engine.llm.gate.CallGate` over the tenants' budgets.

    ``hold_seconds``: how long a hold outlives a call that is never recorded, at least the
    longest a call and the recording after it may take. ``clock``: the time whose day and
    month a call is charged to. A call with no tenant, or whose tenant's budget sets no
    limit, costs nothing here; a model outside the catalogue is held at no price.
    """

    def __init__(
        self,
        store: HoldStore,
        budgets: Budgets,
        catalogue: ModelCatalogue,
        *,
        hold_seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._budgets = budgets
        self._catalogue = catalogue
        self._hold_for = timedelta(seconds=hold_seconds)
        self._clock = clock

    def admit(self, intent: CallIntent) -> Admission:
        if intent.tenant is None:
            return UNCONDITIONAL
        budget = self._budgets.for_tenant(intent.tenant)
        if budget == Budget():
            return UNCONDITIONAL
        spec = self._catalogue.get(intent.model)
        worst = spec.worst_cost(intent.input_tokens, intent.max_output_tokens) if spec else 0
        hold = Hold(
            call_id=intent.call_id,
            tenant=intent.tenant,
            usd=Decimal(worst),
            tokens=intent.tokens,
            expires_at=utcnow() + self._hold_for,
        )
        crossed = self._store.reserve(hold, budget, self._clock())
        if crossed is not None:
            raise CallOverBudget(crossed)
        return _Held(self._store, self._catalogue, intent)


@dataclass(frozen=True, slots=True)
class _Held:
    store: HoldStore
    catalogue: ModelCatalogue
    intent: CallIntent

    def settle(
        self, input_tokens: int, output_tokens: int, provider: ProviderLimits | None = None
    ) -> None:
        """Hold what the call cost rather than its worst case. Should this fail, the worst
        case stays held until the call is recorded: a failure is logged, never raised."""
        cost = self.catalogue.cost(self.intent.model, input_tokens, output_tokens)
        try:
            self.store.settle(self.intent.call_id, cost.usd, input_tokens + output_tokens)
        except Exception as error:
            logger.warning("could not settle the budget hold of an LLM call: %r", error)
