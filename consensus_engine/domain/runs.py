"""The life cycle of a run and its steps, as plain values shared by every layer."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
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
        return self in ENDED


IN_FLIGHT = (RunStatus.QUEUED, RunStatus.RUNNING)
"""The statuses of a run still under way: counted by the tenant cap, watched by the sweeper."""

ENDED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
"""The statuses of a run that ended: it runs no more, and may be deleted."""


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
    (``expand``, ``review_<persona>``, ``debate_<persona>``, ``aggregate``, ``chair``),
    the worker's actors and the messages the sweeper sends. A run has the debate steps
    only with two review rounds, and the chair step only when a chair is asked for."""

    EXPAND = "expand"
    REVIEW = "review"
    DEBATE = "debate"
    AGGREGATE = "aggregate"
    CHAIR = "chair"

    @property
    def per_persona(self) -> bool:
        """Its steps are one per persona."""
        return self in (Stage.REVIEW, Stage.DEBATE)

    def step(self, persona_id: str | None = None) -> str:
        """The step name of this stage (for a per-persona stage, of one persona's step)."""
        if self.per_persona != (persona_id is not None):
            raise ValueError("a review or debate step names its persona; no other step does")
        return f"{self.value}_{persona_id}" if persona_id is not None else self.value


EXPAND_STEP = Stage.EXPAND.step()
AGGREGATE_STEP = Stage.AGGREGATE.step()
CHAIR_STEP = Stage.CHAIR.step()


def review_step(persona_id: str) -> str:
    """The step name of one persona's review, e.g. ``review_architect``."""
    return Stage.REVIEW.step(persona_id)


def debate_step(persona_id: str) -> str:
    """The step name of one persona's second-round review, e.g. ``debate_architect``."""
    return Stage.DEBATE.step(persona_id)


def split_persona_step(step_name: str) -> tuple[Stage, str] | None:
    """The stage and persona of a review or debate step; ``None`` for any other name."""
    for stage in Stage:
        prefix = f"{stage.value}_"
        if stage.per_persona and step_name.startswith(prefix):
            return stage, step_name[len(prefix) :]
    return None


def parse_step(step_name: str) -> tuple[Stage, str | None]:
    """The stage and persona a step name stands for (``ValueError`` for no step)."""
    return split_persona_step(step_name) or (Stage(step_name), None)


def persona_of_step(step_name: str) -> str | None:
    """The persona a review or debate step belongs to; ``None`` for any other name."""
    split = split_persona_step(step_name)
    return None if split is None else split[1]


def step_names(persona_ids: list[str], *, rounds: int = 1, chair: bool = False) -> list[str]:
    """Every step of a run, in display order."""
    debates = [debate_step(p) for p in persona_ids] if rounds == 2 else []
    return [
        EXPAND_STEP,
        *(review_step(p) for p in persona_ids),
        *debates,
        AGGREGATE_STEP,
        *([CHAIR_STEP] if chair else []),
    ]


@dataclass(frozen=True)
class Progress:
    """Where a run's steps stand, and so what may run next: the one rule for the order of
    stages, which the worker's barrier and the sweeper both follow."""

    stage: Stage | None
    """The earliest stage with a step still to end; ``None``: every step ended."""
    open_steps: tuple[str, ...]
    """That stage's steps still to end."""
    never: tuple[str, ...]
    """Debate steps that cannot run, their persona's first-round review having failed:
    to be marked skipped."""


def progress(statuses: Mapping[str, StepStatus]) -> Progress:
    """Where a run with these step statuses stands."""
    never = tuple(
        name
        for name, status in statuses.items()
        if status is StepStatus.PENDING
        and (parsed := parse_step(name))[0] is Stage.DEBATE
        and statuses.get(review_step(parsed[1] or "")) in (StepStatus.FAILED, StepStatus.SKIPPED)
    )
    for stage in Stage:
        open_steps = tuple(
            name
            for name, status in statuses.items()
            if parse_step(name)[0] is stage and not status.is_terminal and name not in never
        )
        if open_steps:
            return Progress(stage, open_steps, never)
    return Progress(None, (), never)


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

    @classmethod
    def of_step(cls, step_name: str, run_id: uuid.UUID, priority: Priority) -> Job:
        """The job that runs the step ``step_name``."""
        stage, persona_id = parse_step(step_name)
        return cls(stage, run_id, priority, persona_id)
