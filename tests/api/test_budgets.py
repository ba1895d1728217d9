"""Tenant budgets and the usage report, over HTTP against the real API and PostgreSQL.

Spend is what ``llm_calls`` holds for the tenant; these tests write calls as a worker or a
synchronous request would, then ask as a tenant would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from consensus_engine.db import reads
from consensus_engine.db.models import LlmCall, Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.budgets import Budgets, first_exhausted
from consensus_engine.llm.records import LlmCallOutcome
from consensus_engine.pipeline.refusals import BudgetExceeded
from consensus_engine.pipeline.service import check_budget

from .conftest import ApiFactory, ApiHarness

IDEA = "Let people book a bike repair slot online and get a text when it is ready."
BUDGETS = {"default": {"usd_per_day": 1.0, "usd_per_month": 20, "tokens_per_day": 100_000}}


def spent(api: ApiHarness, tenant: str, usd: str, *, at: datetime | None = None) -> None:
    """One synchronous LLM call of ``tenant`` costing ``usd``, made at ``at`` (now)."""
    with api.stack.sessions.begin() as session:
        session.add(
            LlmCall(
                tenant=tenant,
                step="expand",
                model="offline-expand",
                input_tokens=1000,
                output_tokens=500,
                cost_usd=Decimal(usd),
                outcome=LlmCallOutcome.SUCCESS,
                created_at=at or utcnow(),
            )
        )


def run_count(api: ApiHarness) -> int:
    with api.stack.sessions() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Run)) or 0


def test_a_tenant_at_its_daily_limit_is_refused_and_others_are_not(make_api: ApiFactory) -> None:
    api = make_api(api={"TENANT_BUDGETS_JSON": json.dumps(BUDGETS)})
    spent(api, "acme", "1.00")
    before = run_count(api)

    refused = api.acme.post("/v1/runs", {"idea": IDEA})

    assert refused.status == 429, refused.body
    body = refused.json()
    assert body["code"] == "BUDGET_EXCEEDED"
    assert body["details"]["limit"] == "usd_per_day"
    resets = datetime.fromisoformat(body["details"]["resets_at"])
    assert resets == datetime.combine(utcnow().date() + timedelta(days=1), datetime.min.time(), UTC)
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    assert run_count(api) == before  # nothing stored
    synchronous = api.acme.post("/v1/expand-idea", {"idea": IDEA})
    assert (synchronous.status, synchronous.json()["code"]) == (429, "BUDGET_EXCEEDED")

    assert api.globex.post("/v1/runs", {"idea": IDEA}).status == 202


def test_usage_shows_spend_by_day_and_model_and_what_is_left(make_api: ApiFactory) -> None:
    api = make_api(api={"TENANT_BUDGETS_JSON": json.dumps(BUDGETS)})
    spent(api, "acme", "0.25")
    spent(api, "acme", "0.15")
    spent(api, "acme", "0.30", at=utcnow() - timedelta(days=2))
    spent(api, "globex", "0.90")

    response = api.acme.get("/v1/usage?days=7")

    assert response.status == 200, response.body
    usage = response.json()
    assert usage["tenant"] == "acme"
    today, earlier = usage["days"]
    assert (today["model"], today["calls"], today["cost_usd"]) == ("offline-expand", 2, 0.4)
    assert today["day"] > earlier["day"] and earlier["cost_usd"] == 0.3
    left = {b["limit"]: b for b in usage["budget"]}
    assert left["usd_per_day"]["used"] == pytest.approx(0.4)
    assert left["usd_per_day"]["left"] == pytest.approx(0.6)
    assert left["usd_per_month"]["used"] >= 0.4  # 0.7 unless two days ago was last month
    assert left["tokens_per_day"]["used"] == 3000
    assert api.acme.get("/v1/usage?days=0").status == 422


def test_the_budget_starts_over_at_the_utc_day_boundary(make_api: ApiFactory) -> None:
    """An explicit clock: spend just before midnight counts that day, not the next."""
    api = make_api()
    budgets = Budgets.from_json(json.dumps(BUDGETS))
    midnight = datetime(2026, 12, 8, tzinfo=UTC)
    spent(api, "acme", "1.00", at=midnight - timedelta(seconds=1))

    with api.stack.sessions() as session:
        with pytest.raises(BudgetExceeded) as refused:
            check_budget(session, budgets, "acme", at=midnight - timedelta(microseconds=1))
        assert refused.value.standing.resets_at == midnight
        check_budget(session, budgets, "acme", at=midnight)  # a new day: nothing spent
        month = reads.spend(session, "acme", midnight)
    assert month.usd_this_month == Decimal("1.00") and month.usd_today == 0
    assert first_exhausted(budgets.for_tenant("acme"), month) is None


def test_a_synchronous_call_whose_worst_case_would_cross_the_budget_is_refused(
    make_api: ApiFactory,
) -> None:
    """Output at $1000 a million tokens, capped at 1000: each call may cost $1.00. With
    $0.50 left of the day, the call is not sent; with $1.00 left, it is."""
    priced = {"gpt-4.1-mini": {"input": 0, "output": 1000}}
    api = make_api(
        api={
            "TENANT_BUDGETS_JSON": json.dumps(BUDGETS),
            "MODEL_CATALOGUE_JSON": json.dumps(priced),
            "LLM_MAX_OUTPUT_TOKENS": 1000,
        }
    )
    spent(api, "acme", "0.50")
    requests_before = api.stack.llm.stats()["total"]

    refused = api.acme.post("/v1/expand-idea", {"idea": IDEA})

    assert refused.status == 429, refused.body
    body = refused.json()
    assert body["code"] == "BUDGET_EXCEEDED" and body["details"]["limit"] == "usd_per_day"
    assert body["details"]["used"] == "0.500000"
    assert api.stack.llm.stats()["total"] == requests_before  # nothing was sent
    assert api.globex.post("/v1/expand-idea", {"idea": IDEA}).status == 200
