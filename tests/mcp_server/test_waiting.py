"""A wait that runs out: the run is still queued (no worker here), and the answer says so
instead of failing, with the run id to pick it up later."""

from __future__ import annotations

import asyncio
import time

from api.conftest import ApiFactory
from mcp import Client

from consensus_engine.mcp.server import build_server


def test_a_wait_that_runs_out_answers_the_run_as_it_stands(make_api: ApiFactory) -> None:
    api = make_api()  # no worker: the run stays queued

    async def main() -> None:
        async with Client(build_server(api.base_url, api.keys["acme"])) as client:
            started = time.monotonic()
            result = await client.call_tool(
                "submit_and_wait",
                {"idea": "A lending shelf for garden tools.", "timeout_seconds": 2},
            )
            waited = time.monotonic() - started
            assert not result.is_error, result.content
            summary = result.structured_content
            assert summary is not None
            assert (summary["status"], summary["finished"], summary["decision"]) == (
                "queued",
                False,
                None,
            )
            assert summary["run_id"] in summary["next_step"]
            assert 2 <= waited < 10, waited

    asyncio.run(main())
