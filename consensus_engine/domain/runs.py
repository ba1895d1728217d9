"""The life cycle of a run and its steps, as plain values shared by every layer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
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


IN_FLIGHT = (RunStatus.QUEUED, RunStatus.RUNNING)
"""The statuses of a run still under way: counted by the tenant cap, watched by the sweeper."""


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


class Stage(StrEnum):
    """The stages of a run, in order. Everything else is named after them: the steps
    (``expand``, ``review_<persona>``, ``aggregate``), the worker's actors and the
    messages the sweeper sends."""

    EXPAND = "expand"
    REVIEW = "review"
    AGGREGATE = "aggregate"

    def step(self, persona_id: str | None = None) -> str:
        """The step name of this stage (for a review, of one persona's review)."""
        if (self is Stage.REVIEW) != (persona_id is not None):
            raise ValueError("a review step names its persona; no other step does")
        return f"{_REVIEW_PREFIX}{persona_id}" if persona_id is not None else self.value


_REVIEW_PREFIX = "review_"
EXPAND_STEP = Stage.EXPAND.step()
AGGREGATE_STEP = Stage.AGGREGATE.step()


def review_step(persona_id: str) -> str:
    """The step name of one persona's review, e.g. ``review_architect``."""
    return Stage.REVIEW.step(persona_id)


def persona_of_step(step_name: str) -> str | None:
    """The persona a review step belongs to, or ``None`` for expand and aggregate."""
    if step_name.startswith(_REVIEW_PREFIX):
        return step_name[len(_REVIEW_PREFIX) :]
    return None


def step_names(persona_ids: list[str]) -> list[str]:
    """Every step of a run, in display order."""
    return [EXPAND_STEP, *(review_step(p) for p in persona_ids), AGGREGATE_STEP]


@dataclass(frozen=True)
class Job:
    """One stage of one run to be done: what a stage message carries."""

    stage: Stage
    run_id: uuid.UUID
    priority: Priority
    persona_id: str | None = None
    delay_seconds: float | None = None
    """Not before this many seconds from now (``None``: at once)."""

    @property
    def step_name(self) -> str:
        return self.stage.step(self.persona_id)
