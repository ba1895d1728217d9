"""Waiting for a run's decision within a deadline, reporting its steps as progress.

Polls ``GET /v1/runs/{id}`` rather than holding the event stream: the blocking client's
stream cannot be abandoned when the deadline passes, a poll can. Each poll is one request;
a run takes many seconds, so a second between polls costs nothing an agent would notice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from consensus_engine.domain.runs import StepStatus
from consensus_engine.mcp.gateway import Gateway
from consensus_engine.run_progress import TERMINAL_STATUSES

POLL_SECONDS = 1.0

Progress = Callable[[float, float, str], Awaitable[None]]
"""``(done, total, message)``: how many of the run's steps have ended."""


_ENDED_STEPS = frozenset(status.value for status in StepStatus if status.is_terminal)


def steps_done(detail: Mapping[str, Any]) -> tuple[int, int]:
    steps = detail.get("steps") or []
    done = sum(1 for step in steps if step.get("status") in _ENDED_STEPS)
    return done, len(steps)


async def wait_for_run(
    gateway: Gateway,
    headers: Mapping[str, str] | None,
    run_id: str,
    *,
    timeout: float,
    progress: Progress,
) -> dict[str, Any]:
    """The run's detail once it has ended, or as it stands when ``timeout`` runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    reported = (-1, -1)
    while True:
        detail = await gateway.call(headers, "GET", f"/v1/runs/{run_id}")
        status = str(detail.get("status"))
        counts = steps_done(detail)
        if counts != reported and counts[1]:
            reported = counts
            await progress(counts[0], counts[1], f"{counts[0]} of {counts[1]} steps ended")
        remaining = deadline - loop.time()
        if status in TERMINAL_STATUSES or remaining <= 0:
            return detail
        await asyncio.sleep(min(POLL_SECONDS, remaining))
