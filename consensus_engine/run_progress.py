"""A run's progress as the client follows it, apart from how it is fetched.

Server-Sent Events are parsed from lines, and both events and a polled run detail become
the same :data:`Progress` updates, so the terminal renders one kind of thing whichever way
the client got it. No I/O here: ``client.py`` reads, and turns network failures into errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: Any
    """The ``data`` field parsed as JSON, or the raw text when it is not JSON."""


@dataclass(frozen=True)
class StepUpdate:
    """A step changed: its new status and how many attempts it took so far."""

    step_name: str
    status: str
    attempts: int
    error: str | None = None
    reused: bool = False


@dataclass(frozen=True)
class StatusUpdate:
    """The run's status changed; ``final`` once it has ended."""

    status: str
    final: bool
    error_code: str | None = None


Progress = StepUpdate | StatusUpdate


def parse_sse(lines: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """The events of a stream read line by line, until it ends; comments are skipped."""
    event: str = "message"
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    value: Any = json.loads(text)
                except ValueError:
                    value = text
                yield ServerSentEvent(event, value)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value_text = line.partition(":")
        value_text = value_text.removeprefix(" ")
        if name == "event":
            event = value_text
        elif name == "data":
            data.append(value_text)


def _step_update(step: Mapping[str, Any]) -> StepUpdate:
    return StepUpdate(
        step_name=str(step.get("step_name", "?")),
        status=str(step.get("status", "?")),
        attempts=int(step.get("attempts") or 0),
        error=step.get("error"),
        reused=bool(step.get("reused", False)),
    )


def event_updates(event: ServerSentEvent) -> list[Progress]:
    """What one event of ``GET /v1/runs/{id}/events`` says changed."""
    data = event.data if isinstance(event.data, dict) else {}
    updates: list[Progress] = []
    if event.event == "snapshot":
        updates.extend(_step_update(step) for step in data.get("steps", []))
    if event.event == "step":
        updates.append(_step_update(data))
    if event.event in ("snapshot", "status", "end") and "status" in data:
        status = str(data["status"])
        final = event.event == "end" or status in TERMINAL_STATUSES
        updates.append(StatusUpdate(status, final, data.get("error_code")))
    return updates


def detail_updates(detail: Mapping[str, Any]) -> list[Progress]:
    """The state of every step and of the run, from ``GET /v1/runs/{id}``."""
    updates: list[Progress] = [_step_update(step) for step in detail.get("steps", [])]
    status = str(detail.get("status", "?"))
    error = detail.get("error") or {}
    updates.append(StatusUpdate(status, status in TERMINAL_STATUSES, error.get("code")))
    return updates


class ChangeFilter:
    """Drops repeats, so a snapshot after a poll (or the reverse) shows nothing twice.

    A step is new when its status or attempt count differs from the last seen; the run's
    status when it differs from the last status seen.
    """

    def __init__(self) -> None:
        self._steps: dict[str, tuple[str, int]] = {}
        self._status: str | None = None

    def changes(self, updates: Iterable[Progress]) -> Iterator[Progress]:
        for update in updates:
            if isinstance(update, StepUpdate):
                state = (update.status, update.attempts)
                if self._steps.get(update.step_name) != state:
                    self._steps[update.step_name] = state
                    yield update
            elif self._status != update.status:
                self._status = update.status
                yield update
