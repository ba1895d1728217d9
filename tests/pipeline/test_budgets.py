"""A tenant's budget stops its run in flight, in a real worker process against the offline
LLM over HTTP and PostgreSQL; another tenant's run goes on.

Prices make the sums plain: input is free and output costs $1000 a million tokens, with
an output cap of 1000 tokens, so every call's worst case is exactly $1.00 and what it
really costs is a thousandth of a dollar per token the server reports. One worker
thread takes the steps one at a time. A first run, of a tenant without a budget,
measures what each call costs (the offline server answers the same prompt the same way);
the tight tenant is then left room for its expansion and one review's worst case but
not a second: it keeps the one review it finished and fails with ``budget_exceeded``;
retried once its spend no longer counts, it finishes.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa
from support.stack import PipelineStack, StackFactory

from consensus_engine.db import reads
from consensus_engine.db.models import BudgetHold, LlmCall
from consensus_engine.db.types import utcnow
from consensus_engine.domain.runs import RunStatus, StepStatus, review_step
from consensus_engine.llm.records import LlmCallOutcome
from consensus_engine.pipeline.refusals import BudgetExceeded

MODEL = "offline-priced"
LIMIT = Decimal(100)
WORST_CASE = Decimal("1.00")
IDEA = "A tool library for one street: borrow a drill, lend a ladder, log who has what."


def spend_today(stack: PipelineStack, tenant: str) -> Decimal:
    with stack.sessions() as session:
        return reads.spend(session, tenant, utcnow()).usd_today


def seed_spend(stack: PipelineStack, tenant: str, usd: Decimal) -> None:
    """Spend earlier today, as recorded calls."""
    with stack.sessions.begin() as session:
        session.add(
            LlmCall(
                tenant=tenant,
                step="expand",
                model=MODEL,
                cost_usd=usd,
                outcome=LlmCallOutcome.SUCCESS,
            )
        )


def test_a_run_that_would_cross_its_budget_stops_and_keeps_what_it_finished(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(
        env={
            "EXPAND_MODEL": MODEL,
            "REVIEW_MODEL": MODEL,
            "MODEL_CATALOGUE_JSON": json.dumps({MODEL: {"input": 0, "output": 1000}}),
            "LLM_MAX_OUTPUT_TOKENS": "1000",
            "TENANT_BUDGETS_JSON": json.dumps({"tight": {"usd_per_day": str(LIMIT)}}),
        }
    )
    worker = stack.start_worker(processes=1, threads=1)

    measured = stack.wait_for(stack.submit(IDEA, tenant="roomy"))
    assert measured.status is RunStatus.COMPLETED, measured.error
    expand = sum(c.cost_usd for c in measured.llm_calls if c.step == "expand")
    reviews = [c.cost_usd for c in measured.llm_calls if c.step != "expand" and c.cost_usd]
    assert len(reviews) == len(measured.reviews) >= 3
    assert max([expand, *reviews]) < WORST_CASE  # else the room below admits no review

    # Room for the expansion and one review's worst case, and half the cheapest review.
    room = expand + WORST_CASE + min(reviews) / 2
    seed_spend(stack, "tight", LIMIT - room)
    tight = stack.submit(IDEA, tenant="tight")
    other = stack.submit(IDEA, tenant="roomy")
    stopped, went_on = stack.wait_for(tight), stack.wait_for(other)

    assert (stopped.status, stopped.error_code) == (RunStatus.FAILED, "budget_exceeded")
    assert stopped.error is not None and "usd_per_day" in stopped.error
    assert len(stopped.reviews) == 1  # the review it finished is kept
    (finished,) = stopped.reviews
    steps = {step.step_name: step.status for step in stopped.steps}
    assert steps[review_step(finished.persona_id)] is StepStatus.COMPLETED
    assert StepStatus.FAILED in steps.values()
    assert spend_today(stack, "tight") <= LIMIT  # never crossed, calls in flight included
    assert went_on.status is RunStatus.COMPLETED
    print(
        f"\nbudget: expansion ${expand}, reviews ${min(reviews)}-${max(reviews)}, room "
        f"${room}: {len(stopped.reviews)} of {len(measured.reviews)} reviews, "
        f"${spend_today(stack, 'tight') - (LIMIT - room)} spent of it"
    )
    with stack.sessions() as session:  # every hold was released when its call was recorded
        assert session.scalar(sa.select(sa.func.count()).select_from(BudgetHold)) == 0

    seed_spend(stack, "tight", LIMIT - spend_today(stack, "tight"))
    with pytest.raises(BudgetExceeded):  # at the limit: refused at the door
        stack.submit(IDEA, tenant="tight")

    with stack.sessions.begin() as session:  # a new day: the earlier spend no longer counts
        session.execute(sa.delete(LlmCall).where(LlmCall.run_id.is_(None)))
    stack.service().retry(tight, tenant="tight")
    finished_later = stack.wait_for(tight)
    assert finished_later.status is RunStatus.COMPLETED, finished_later.error
    assert len(finished_later.reviews) == len(measured.reviews)
    worker.check_alive()
