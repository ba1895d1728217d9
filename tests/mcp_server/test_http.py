"""Over streamable HTTP: bound to the host given, and each client's own bearer key is the one
the API sees (the server holds none), so tenants stay apart and a bad key is refused."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from typing import Any

from api.conftest import ApiHarness
from mcp.types import CallToolResult

from mcp_server.conftest import TOOLS, http_client

IDEA = "Publish the allotment society's waiting list so members can see where they stand."


def _error(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, result.content
    assert result.structured_content is not None
    error: dict[str, Any] = result.structured_content["error"]
    return error


def test_http_serves_the_tools_with_each_callers_key(api: ApiHarness, http_url: str) -> None:
    port = urllib.parse.urlsplit(http_url).port
    assert port is not None
    with socket.socket() as probe:  # bound to 127.0.0.1 alone, not every loopback address
        assert probe.connect_ex(("127.0.0.2", port)) != 0

    async def main() -> None:
        async with http_client(http_url, api.keys["acme"]) as acme:
            assert {tool.name for tool in (await acme.list_tools()).tools} == TOOLS
            submitted = await acme.call_tool("submit_and_wait", {"idea": IDEA})
            assert not submitted.is_error, submitted.content
            summary = submitted.structured_content
            assert summary is not None and summary["status"] == "completed"
            assert summary["decision"] in ("approve", "revise", "reject")
            listed = await acme.call_tool("list_runs", {"q": "allotment"})
            assert listed.structured_content is not None
            assert [r["run_id"] for r in listed.structured_content["runs"]] == [summary["run_id"]]
            notes = {"run_id": summary["run_id"], "edit_notes": "Say how long a place is held."}
            revised = await acme.call_tool("revise", notes)
            assert revised.structured_content is not None, revised.content
            assert revised.structured_content["parent_run_id"] == summary["run_id"]
            assert revised.structured_content["status"] == "completed"
            by_score = await acme.call_tool("list_runs", {"sort": "score", "direction": "asc"})
            assert by_score.structured_content is not None, by_score.content
            scores = [r["overall_score"] for r in by_score.structured_content["runs"]]
            assert len(scores) == 2 and scores == sorted(scores)

        async with http_client(http_url, api.keys["globex"]) as globex:
            other = await globex.call_tool("get_run", {"run_id": summary["run_id"]})
            assert _error(other)["code"] == "NOT_FOUND"
            mine = await globex.call_tool("list_runs", {})
            assert mine.structured_content == {"runs": [], "limit": 30, "next_cursor": None}

        for key in (None, "ce_not-a-key"):
            async with http_client(http_url, key) as stranger:
                refused = _error(await stranger.call_tool("list_runs", {}))
                assert (refused["code"], refused["status"]) == ("UNAUTHORIZED", 401), key

    asyncio.run(main())
