"""Over stdio: the tools listed with precise schemas, then a run submitted, found, read,
revised and compared through them, against a real API and worker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from api.conftest import ApiHarness
from mcp import Client
from mcp.types import CallToolResult

from consensus_engine.domain.personas import DEFAULT_PERSONAS
from mcp_server.conftest import TOOLS, launched_client

IDEA = "Let members of the rowing club book the club's boats for early morning outings."
WORD = "rowing"  # in the idea, and in no other run of this test's tenant
NEW_TITLE = "Rowing club boat booking with a weekend rota"


def _data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict), result.content
    return data


def _schemas(listed: list[Any]) -> dict[str, dict[str, Any]]:
    return {tool.name: tool.input_schema for tool in listed}


async def _check_schemas(client: Client) -> None:
    listed = (await client.list_tools()).tools
    assert {tool.name for tool in listed} == TOOLS
    schemas = _schemas(listed)
    assert schemas["submit_and_wait"]["required"] == ["idea"]
    persona = schemas["submit_and_wait"]["properties"]["personas"]["anyOf"][0]["items"]
    assert persona["pattern"] == "^[a-z][a-z0-9_]{1,49}$"
    assert schemas["get_run"]["properties"]["run_id"]["format"] == "uuid"
    assert schemas["list_runs"]["$defs"]["RunStatus"]["enum"] == [
        "queued",
        "running",
        "completed",
        "failed",
        "cancelled",
    ]
    assert sorted(schemas["compare"]["required"]) == ["other_run_id", "run_id"]
    summary = next(tool for tool in listed if tool.name == "submit_and_wait").output_schema
    assert summary is not None and "decision" in summary["properties"]
    for tool in listed:
        assert tool.description and len(tool.description) > 80, tool.name


async def _submit(client: Client) -> dict[str, Any]:
    reports: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total))

    result = await client.call_tool(
        "submit_and_wait",
        {"idea": IDEA, "extra_context": "Boats seat one, two or four.", "timeout_seconds": 120},
        progress_callback=on_progress,
    )
    summary = _data(result)
    assert reports, "no progress was reported"
    assert reports[-1][0] == reports[-1][1], reports  # the last report: every step ended
    return summary


async def _scenario(client: Client) -> None:
    await _check_schemas(client)

    summary = await _submit(client)
    run_id = summary["run_id"]
    assert summary["status"] == "completed" and summary["finished"] is True
    assert summary["decision"] in ("approve", "revise", "reject")
    assert 0.0 <= summary["overall_score"] <= 1.0
    assert summary["rationale"] and summary["proposal_title"]
    assert [r["persona_id"] for r in summary["reviews"]] == list(DEFAULT_PERSONAS.ids)

    detail = _data(await client.call_tool("get_run", {"run_id": run_id}))
    assert detail["run_id"] == run_id
    assert detail["decision"]["decision"] == summary["decision"]
    assert detail["extra_context"] == "Boats seat one, two or four."

    found = _data(await client.call_tool("list_runs", {"q": WORD, "status": "completed"}))
    assert [run["run_id"] for run in found["runs"]] == [run_id]
    missed = _data(await client.call_tool("list_runs", {"q": "zeppelin"}))
    assert missed["runs"] == []

    edits = {"title": NEW_TITLE}
    arguments = {"run_id": run_id, "edited_sections": edits, "rerun_personas": ["critic"]}
    revised = _data(await client.call_tool("revise", arguments))
    new_id = revised["run_id"]
    assert new_id != run_id and revised["parent_run_id"] == run_id
    assert revised["finished"] is True and revised["decision"] is not None
    assert revised["proposal_title"] == NEW_TITLE
    assert revised["rerun_personas"] == ["critic"]
    assert sorted(revised["reused_personas"]) == sorted(set(DEFAULT_PERSONAS.ids) - {"critic"})

    diff = _data(await client.call_tool("compare", {"run_id": run_id, "other_run_id": new_id}))
    assert diff["metadata"]["relationship"] == "run1_is_parent_of_run2"
    assert diff["proposal_changes"]["title"]["status"] == "modified"
    assert diff["proposal_changes"]["problem_statement"]["status"] == "unchanged"

    missing = await client.call_tool("get_run", {"run_id": str(uuid.uuid4())})
    assert missing.is_error
    assert missing.structured_content is not None
    assert missing.structured_content["error"]["code"] == "NOT_FOUND"


async def _refused(client: Client) -> None:
    result = await client.call_tool("list_runs", {})
    assert result.is_error
    assert result.structured_content is not None
    error = result.structured_content["error"]
    assert (error["code"], error["status"]) == ("UNAUTHORIZED", 401)
    text = result.content[0]
    assert text.type == "text" and text.text.startswith("UNAUTHORIZED: ")
    assert "Traceback" not in text.text


def test_tools_over_stdio_submit_find_revise_and_compare(api: ApiHarness, tmp_path: Path) -> None:
    async def main() -> None:
        async with launched_client(api, api.keys["acme"], tmp_path) as client:
            await _scenario(client)
        async with launched_client(api, "ce_not-a-key", tmp_path) as client:
            await _refused(client)

    asyncio.run(main())
