"""Tool results: structured content for programs, the same as JSON text for models that
read only text, and failures flagged ``isError`` with the API's code and message."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from consensus_engine.mcp.gateway import ToolFailure
from consensus_engine.mcp.models import ReviewLine, RunSummary
from consensus_engine.run_progress import TERMINAL_STATUSES
from consensus_engine.terminal import blocking_texts


def structured(payload: BaseModel | Mapping[str, Any]) -> CallToolResult:
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else dict(payload)
    text = json.dumps(data, ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def failed(failure: ToolFailure) -> CallToolResult:
    """``isError`` with a first line an agent can act on and the envelope as data."""
    error: dict[str, Any] = {"code": failure.code, "message": failure.message}
    if failure.status is not None:
        error["status"] = failure.status
    if failure.request_id is not None:
        error["request_id"] = failure.request_id
    if failure.details is not None:
        error["details"] = failure.details
    text = f"{failure.code}: {failure.message}"
    if failure.request_id is not None:
        text += f" (request {failure.request_id})"
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content={"error": error},
        is_error=True,
    )


async def answer(work: Awaitable[BaseModel | Mapping[str, Any]]) -> CallToolResult:
    """The tool's result, or its failure as a tool error (the API was asked, and said no)."""
    try:
        return structured(await work)
    except ToolFailure as failure:
        return failed(failure)


def _review_line(review: Mapping[str, Any]) -> ReviewLine:
    return ReviewLine(
        persona_id=str(review.get("persona_id")),
        persona_name=str(review.get("persona_name")),
        confidence_score=float(review.get("confidence_score") or 0.0),
        summary=str(review.get("summary") or ""),
        blocking=blocking_texts(review),
    )


def _error_text(detail: Mapping[str, Any]) -> str | None:
    error = detail.get("error") or {}
    if not (error.get("code") or error.get("message")):
        return None
    return f"{error.get('code') or 'ERROR'}: {error.get('message') or ''}".strip()


def _next_step(run_id: str, status: str) -> str:
    if status not in TERMINAL_STATUSES:
        return (
            f"the run is still {status}; call get_run with run_id {run_id} later for the "
            "decision (do not submit the idea again)"
        )
    if status == "completed":
        return (
            "get_run has the full reviews; revise edits the proposal and reviews it again; "
            "compare diffs two runs"
        )
    return "see error; get_run has each step's state"


def summarize(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of :class:`RunSummary` from ``GET /v1/runs/{id}``."""
    decision = detail.get("decision") or {}
    proposal = (detail.get("proposal") or {}).get("proposal") or {}
    report = (detail.get("chair") or {}).get("report") or {}
    run_id, status = str(detail.get("run_id")), str(detail.get("status"))
    return {
        "run_id": run_id,
        "status": status,
        "finished": status in TERMINAL_STATUSES,
        "decision": decision.get("decision"),
        "overall_score": decision.get("overall_weighted_confidence"),
        "rationale": decision.get("rationale"),
        "proposal_title": proposal.get("title"),
        "proposal_summary": proposal.get("summary"),
        "reviews": [_review_line(review) for review in detail.get("reviews") or []],
        "chair_summary": report.get("summary"),
        "error": _error_text(detail),
        "parent_run_id": detail.get("parent_run_id"),
        "next_step": _next_step(run_id, status),
    }


def run_summary(detail: Mapping[str, Any]) -> RunSummary:
    return RunSummary.model_validate(summarize(detail))
