"""What a tenant spent on the LLM, and what is left of its budget."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from consensus_engine.api.openapi import errors
from consensus_engine.api.state import ApiState, PrincipalDep, StateDep
from consensus_engine.db import reads
from consensus_engine.db.types import utcnow
from consensus_engine.domain.budgets import Limit, day_start
from consensus_engine.pipeline.service import budget_standings

router = APIRouter(prefix="/v1", tags=["usage"])


class DayUsage(BaseModel):
    day: str = Field(description="UTC day, YYYY-MM-DD")
    model: str
    calls: int = Field(description="LLM requests, failed attempts included")
    input_tokens: int
    output_tokens: int
    cost_usd: float


class BudgetLeft(BaseModel):
    limit: Limit
    allowed: float
    used: float
    left: float
    resets_at: datetime


class Usage(BaseModel):
    tenant: str
    days: list[DayUsage] = Field(description="newest day first, one entry per day and model")
    budget: list[BudgetLeft] = Field(
        description="each limit of the tenant's budget; none: no limits"
    )


def _usage(state: ApiState, tenant: str, days: int) -> Usage:
    now = utcnow()
    with state.sessions() as session:
        rows = reads.daily_usage(session, tenant, day_start(now) - timedelta(days=days - 1))
        budget = budget_standings(session, state.settings.budgets, tenant, at=now)
    return Usage(
        tenant=tenant,
        days=[
            DayUsage(
                day=row.day,
                model=row.model,
                calls=row.calls,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                cost_usd=float(row.cost_usd),
            )
            for row in rows
        ],
        budget=[
            BudgetLeft(
                limit=s.limit,
                allowed=float(s.allowed),
                used=float(s.used),
                left=float(s.left),
                resets_at=s.resets_at,
            )
            for s in budget
        ],
    )


@router.get(
    "/usage",
    operation_id="get_usage",
    response_model=Usage,
    summary="Your LLM spend and tokens by day and model, and what is left of your budget",
    responses=errors(),
)
async def usage(
    state: StateDep,
    principal: PrincipalDep,
    days: Annotated[int, Query(ge=1, le=366, description="how many UTC days back")] = 30,
) -> Usage:
    """Every LLM call counts: runs, their retries and revisions, and synchronous requests."""
    return await run_in_threadpool(_usage, state, principal.tenant, days)
