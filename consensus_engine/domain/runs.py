"""The life cycle of a run and its steps, as plain values shared by every layer."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunType(StrEnum):
    INITIAL = "initial"
    REVISION = "revision"


class Priority(StrEnum):
    NORMAL = "normal"
    HIGH = "high"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED)


EXPAND_STEP = "expand"
AGGREGATE_STEP = "aggregate"
_REVIEW_PREFIX = "review_"


def review_step(persona_id: str) -> str:
    """The step name of one persona's review, e.g. ``review_architect``."""
    return f"{_REVIEW_PREFIX}{persona_id}"


def persona_of_step(step_name: str) -> str | None:
    """The persona a review step belongs to, or ``None`` for expand and aggregate."""
    if step_name.startswith(_REVIEW_PREFIX):
        return step_name[len(_REVIEW_PREFIX) :]
    return None


def step_names(persona_ids: list[str]) -> list[str]:
    """Every step of a run, in display order."""
    return [EXPAND_STEP, *(review_step(p) for p in persona_ids), AGGREGATE_STEP]
