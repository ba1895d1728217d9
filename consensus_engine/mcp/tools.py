"""The tools: submit and wait, get, list, revise, compare; each one call of the public API.

Descriptions are written for the agent that picks a tool: what it does, when to use it and
what comes back. Every tool answers structured content (and the same as JSON text); an API
refusal comes back as a tool error carrying the API's code and message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from consensus_engine.domain.runs import RunStatus, RunType
from consensus_engine.domain.schemas import DecisionLabel
from consensus_engine.mcp.gateway import Gateway
from consensus_engine.mcp.models import (
    EditedSections,
    PersonaId,
    RevisionSummary,
    RunId,
    RunSummary,
    WaitSeconds,
)
from consensus_engine.mcp.results import answer, run_summary, summarize
from consensus_engine.mcp.waiting import wait_for_run

Ctx = Context[Any, Any]
ApiObject = dict[str, Any]

DEFAULT_WAIT_SECONDS = 300
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ADDS_A_RUN = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)

Idea = Annotated[
    str, Field(min_length=1, description="the rough idea, in a sentence or a few paragraphs")
]
ExtraContext = Annotated[
    str | dict[str, Any] | None,
    Field(description="background the reviewers should know: text or a JSON object"),
]
Personas = Annotated[
    list[PersonaId] | None,
    Field(
        min_length=1,
        max_length=50,
        description="ask only these personas (ids); default: every configured persona",
    ),
]


def _headers(ctx: Ctx) -> Mapping[str, str] | None:
    """The MCP request's HTTP headers (streamable HTTP); none over stdio."""
    try:
        return ctx.headers
    except ValueError:  # no request context: called outside a request
        return None


async def _progress(ctx: Ctx, done: float, total: float, message: str) -> None:
    await ctx.report_progress(done, total, message)


async def _submit_and_wait(
    gateway: Gateway, ctx: Ctx, body: dict[str, Any], timeout: int
) -> RunSummary:
    headers = _headers(ctx)
    accepted = await gateway.call(headers, "POST", "/v1/runs", body)
    detail = await wait_for_run(
        gateway,
        headers,
        str(accepted["run_id"]),
        timeout=timeout,
        progress=lambda *step: _progress(ctx, *step),
    )
    return run_summary(detail)


async def _revise(
    gateway: Gateway, ctx: Ctx, run_id: RunId, body: dict[str, Any], timeout: int
) -> RevisionSummary:
    headers = _headers(ctx)
    accepted = await gateway.call(headers, "POST", f"/v1/runs/{run_id}/revisions", body)
    new_id = str(accepted["run_id"])
    if timeout > 0:
        detail = await wait_for_run(
            gateway, headers, new_id, timeout=timeout, progress=lambda *s: _progress(ctx, *s)
        )
    else:
        detail = await gateway.call(headers, "GET", f"/v1/runs/{new_id}")
    plan = accepted.get("plan") or {}
    return RevisionSummary.model_validate(
        summarize(detail)
        | {
            "rerun_personas": plan.get("rerun") or [],
            "reused_personas": plan.get("reused") or [],
            "plan_note": str(plan.get("note") or ""),
        }
    )


def register(server: MCPServer, gateway: Gateway) -> None:
    """Add the five tools to ``server``, each calling the API through ``gateway``."""

    @server.tool(title="Submit an idea and wait for the decision", annotations=ADDS_A_RUN)
    async def submit_and_wait(
        idea: Idea,
        ctx: Ctx,
        extra_context: ExtraContext = None,
        personas: Personas = None,
        timeout_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
    ) -> Annotated[CallToolResult, RunSummary]:
        """Have the consensus engine review an idea and return its decision.

        The engine expands the idea into a proposal, has a panel of personas (an
        architect, a critic, a security guardian, ...) review it in parallel and aggregates
        their reviews into a decision: approve, revise or reject, with a weighted score,
        the rationale and each persona's blocking points. Use it before acting on a plan
        that others would have to accept. Takes seconds to minutes; progress is reported
        per step. Returns the run id with the summary: keep it for get_run, revise and
        compare. If the wait runs out (finished=false) the run goes on: call get_run
        later instead of submitting again.
        """
        body: dict[str, Any] = {"idea": idea}
        if extra_context is not None:
            body["extra_context"] = extra_context
        if personas is not None:
            body["personas"] = personas
        return await answer(_submit_and_wait(gateway, ctx, body, timeout_seconds))

    @server.tool(title="Get a run", annotations=READ_ONLY)
    async def get_run(run_id: RunId, ctx: Ctx) -> Annotated[CallToolResult, ApiObject]:
        """Everything about one run: the idea, the expanded proposal, every persona's full
        review (strengths, concerns, recommendations, blocking issues), the decision with
        its score breakdown, each step's state and the cost. Use it to read a decision in
        full or to check on a run that was still going."""
        return await answer(gateway.call(_headers(ctx), "GET", f"/v1/runs/{run_id}"))

    @server.tool(title="List runs", annotations=READ_ONLY)
    async def list_runs(
        ctx: Ctx,
        q: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=200,
                description="words to find in the idea or the proposal (ignores case)",
            ),
        ] = None,
        status: Annotated[RunStatus | None, Field(description="only runs in this state")] = None,
        decision: Annotated[
            DecisionLabel | None, Field(description="only completed runs with this decision")
        ] = None,
        run_type: Annotated[
            RunType | None, Field(description="initial runs, or revisions of another run")
        ] = None,
        parent_run_id: Annotated[
            RunId | None, Field(description="only the revisions of this run")
        ] = None,
        min_confidence: Annotated[
            float | None, Field(ge=0.0, le=1.0, description="only runs scored at least this")
        ] = None,
        created_after: Annotated[
            datetime | None, Field(description="inclusive; ISO 8601 with a time zone")
        ] = None,
        created_before: Annotated[
            datetime | None, Field(description="inclusive; ISO 8601 with a time zone")
        ] = None,
        sort: Annotated[
            Literal["created", "score", "decision"] | None,
            Field(description="default created; score and decision put runs without one last"),
        ] = None,
        direction: Annotated[
            Literal["desc", "asc"] | None,
            Field(description="default desc: newest, highest score, approve first"),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="runs per page")] = 30,
        cursor: Annotated[
            str | None,
            Field(
                max_length=500,
                description="next_cursor of the previous page, for the next (same sort)",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, ApiObject]:
        """This key's runs, newest first unless sorted by score or decision, with each
        one's status, decision, score and proposal title. Filter by words (q), status,
        decision, type, parent or date; page on with next_cursor. Use it to find an
        earlier run of the same idea before submitting it again."""
        params: dict[str, object] = {
            "q": q,
            "status": status,
            "decision": decision,
            "run_type": run_type,
            "parent_run_id": parent_run_id,
            "min_confidence": min_confidence,
            "created_after": created_after.isoformat() if created_after else None,
            "created_before": created_before.isoformat() if created_before else None,
            "sort": sort,
            "direction": direction,
            "limit": limit,
            "cursor": cursor,
        }
        return await answer(gateway.call(_headers(ctx), "GET", "/v1/runs", params=params))

    @server.tool(title="Revise a run and review it again", annotations=ADDS_A_RUN)
    async def revise(
        run_id: Annotated[RunId, Field(description="the completed run to revise")],
        ctx: Ctx,
        edit_notes: Annotated[
            str | None,
            Field(
                min_length=1,
                description="instructions the engine applies to the proposal, e.g. 'add a "
                "rollback plan'",
            ),
        ] = None,
        edited_sections: Annotated[
            EditedSections | None,
            Field(description="proposal sections to replace with this exact text"),
        ] = None,
        rerun_personas: Annotated[
            list[PersonaId] | None,
            Field(
                min_length=1,
                max_length=50,
                description="exactly these personas review again; default: those whose "
                "concerns the changes touch",
            ),
        ] = None,
        timeout_seconds: Annotated[
            int,
            Field(
                ge=0,
                le=3600,
                description="how long to wait for the new decision; 0: do not wait",
            ),
        ] = DEFAULT_WAIT_SECONDS,
    ) -> Annotated[CallToolResult, RevisionSummary]:
        """Revise a completed run's proposal and have it reviewed again: a new run whose
        proposal is the old one with the edits applied. Give edit_notes (the engine
        rewrites the proposal), edited_sections (your own text), or only rerun_personas.
        Personas whose concerns the edit does not touch keep their review. Returns the
        new run's summary (its run_id differs) and which personas reviewed again; compare
        the two run ids to see what changed."""
        body: dict[str, Any] = {}
        if edit_notes is not None:
            body["edit_notes"] = edit_notes
        if edited_sections is not None:
            body["edited_proposal"] = edited_sections.model_dump(exclude_none=True)
        if rerun_personas is not None:
            body["rerun_personas"] = rerun_personas
        return await answer(_revise(gateway, ctx, run_id, body, timeout_seconds))

    @server.tool(title="Compare two runs", annotations=READ_ONLY)
    async def compare(
        run_id: Annotated[RunId, Field(description="the earlier run (the old side)")],
        other_run_id: Annotated[RunId, Field(description="the later run (the new side)")],
        ctx: Ctx,
    ) -> Annotated[CallToolResult, ApiObject]:
        """What changed between two runs: each proposal section (with a unified diff), each
        persona's confidence, concerns and blocking points, and the decision. Typically a
        run and its revision."""
        path = f"/v1/runs/{run_id}/diff/{other_run_id}"
        return await answer(gateway.call(_headers(ctx), "GET", path))
