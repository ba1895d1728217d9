"""The budget gate against real PostgreSQL: holds for calls in flight, settled to what the
calls cost, released when they are recorded, and the day's limit starting over at
midnight (an explicit clock).

Input is free and output costs $1000 a million tokens with a cap of 1000 tokens: every
call's worst case is $1.00.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from consensus_engine.db import writes
from consensus_engine.db.budget_holds import DatabaseHolds
from consensus_engine.db.engine import session_factory
from consensus_engine.db.models import BudgetHold, LlmCall
from consensus_engine.db.types import utcnow
from consensus_engine.domain.budgets import Budgets, Limit
from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.llm.gate import Admission, CallIntent
from consensus_engine.llm.records import CallRecord, LlmCallOutcome
from consensus_engine.pipeline.budget_gate import BudgetGate, CallOverBudget
from consensus_engine.settings import load_settings

MODEL = "priced"
BUDGETS = Budgets.from_json(json.dumps({"acme": {"usd_per_day": 5, "tokens_per_day": 1_000_000}}))


def catalogue() -> ModelCatalogue:
    settings = load_settings(
        model_catalogue_json=json.dumps({MODEL: {"input": 0, "output": 1000}}),
        expand_model=MODEL,
        review_model=MODEL,
    )
    return ModelCatalogue.from_settings(settings)


def intent(tenant: str | None = "acme") -> CallIntent:
    return CallIntent(model=MODEL, tenant=tenant, input_tokens=400, max_output_tokens=1000)


def make_gate(
    engine: Engine, *, hold_seconds: float = 60, clock: Callable[[], datetime] = utcnow
) -> BudgetGate:
    holds = DatabaseHolds(session_factory(engine))
    return BudgetGate(holds, BUDGETS, catalogue(), hold_seconds=hold_seconds, clock=clock)


def held(session: Session) -> list[tuple[Decimal, int]]:
    """The holds as they are now (a transaction of their own)."""
    with session.begin():
        return [(h.usd, h.tokens) for h in session.scalars(sa.select(BudgetHold))]


def record(session: Session, admitted: CallIntent, output_tokens: int) -> None:
    """The call recorded as a synchronous request records it."""
    call = CallRecord(
        step="expand",
        model=MODEL,
        mode="chat",
        attempt=1,
        outcome=LlmCallOutcome.SUCCESS,
        input_tokens=400,
        output_tokens=output_tokens,
        cost_usd=Decimal(output_tokens) / 1000,
        priced=True,
        latency_ms=5.0,
        call_id=admitted.call_id,
    )
    with session.begin():
        writes.record_llm_calls(session, None, [call], tenant="acme")


def test_calls_in_flight_never_take_a_tenant_past_its_limit(
    db_engine: Engine, db_session: Session
) -> None:
    """Twelve threads at once, each call's worst case $1 against $5 a day: five go."""
    gate = make_gate(db_engine)
    start = threading.Barrier(12)
    admitted: list[Admission] = []
    refused: list[CallOverBudget] = []

    def call() -> None:
        start.wait()
        try:
            admitted.append(gate.admit(intent()))
        except CallOverBudget as error:
            refused.append(error)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (len(admitted), len(refused)) == (5, 7)
    assert held(db_session) == [(Decimal(1), 1400)] * 5
    standing = refused[0].standing
    assert standing.limit is Limit.USD_PER_DAY and standing.used >= 4
    assert refused[0].code == "budget_exceeded" and not refused[0].transient


def test_a_settled_call_holds_what_it_cost_and_its_record_replaces_the_hold(
    db_engine: Engine, db_session: Session
) -> None:
    gate = make_gate(db_engine)
    intents = [intent() for _ in range(5)]
    admissions = [gate.admit(each) for each in intents]
    with pytest.raises(CallOverBudget):
        gate.admit(intent())

    admissions[0].settle(400, 200)  # $0.20, not $1
    admissions[1].settle(0, 0)  # failed before an answer: nothing
    assert sorted(held(db_session)) == [(0, 0), (Decimal("0.2"), 600), *[(1, 1400)] * 3]
    gate.admit(intent())  # $3.20 held: $1 more fits

    record(db_session, intents[0], output_tokens=200)
    assert len(held(db_session)) == 5  # its hold went, the row counts in its place
    with db_session.begin():
        spent = db_session.scalar(sa.select(sa.func.sum(LlmCall.cost_usd)))
    assert spent == Decimal("0.2")
    with pytest.raises(CallOverBudget):  # still $4.20 in all: a sixth $1 would cross
        gate.admit(intent())


def test_a_hold_whose_call_is_never_recorded_expires(
    db_engine: Engine, db_session: Session
) -> None:
    lapsing = make_gate(db_engine, hold_seconds=0.0)  # as though its worker had died long ago
    for _ in range(5):
        lapsing.admit(intent())
    make_gate(db_engine).admit(intent())  # the lapsed holds count for nothing, and go

    assert held(db_session) == [(Decimal(1), 1400)]


def test_a_call_without_a_tenant_or_a_budget_holds_nothing(
    db_engine: Engine, db_session: Session
) -> None:
    gate = make_gate(db_engine)
    for _ in range(8):
        gate.admit(intent(tenant=None))
        gate.admit(intent(tenant="unlimited"))
    assert held(db_session) == []


def test_the_days_limit_starts_over_at_midnight(db_engine: Engine, db_session: Session) -> None:
    midnight = datetime(2026, 12, 8, tzinfo=UTC)
    with db_session.begin():
        db_session.add(
            LlmCall(
                tenant="acme",
                step="expand",
                model=MODEL,
                cost_usd=Decimal("4.50"),
                outcome=LlmCallOutcome.SUCCESS,
                created_at=midnight - timedelta(minutes=1),
            )
        )
    now = midnight - timedelta(seconds=1)
    gate = make_gate(db_engine, clock=lambda: now)

    with pytest.raises(CallOverBudget) as refused:
        gate.admit(intent())
    assert refused.value.standing.resets_at == midnight
    assert refused.value.standing.used == Decimal("4.50")

    now = midnight
    gate.admit(intent())  # a new day: only this call's hold counts
    assert held(db_session) == [(Decimal(1), 1400)]
