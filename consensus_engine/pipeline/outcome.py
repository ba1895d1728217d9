"""What a stage tells its caller: one outcome, and the jobs that must follow it.

The stages know nothing of the broker; the worker translates an outcome into Dramatiq
(send the follow-ups, raise ``Retry``, or ack) and does nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from consensus_engine.domain.runs import Job


class OutcomeKind(StrEnum):
    DONE = "done"
    """The step settled; send ``follow_ups``."""
    RETRY = "retry"
    """The step was handed back; deliver this message again after ``retry_after`` seconds
    (spending one of the step's retries unless ``spends_retry`` is off: the database was
    away, or the LLM's shared rate limit had no room)."""
    FAILED = "failed"
    """The step failed for good (``reason``); ``follow_ups`` may still move the run on."""
    SKIPPED = "skipped"
    """Nothing was done (a duplicate, a finished run, a step held elsewhere)."""


@dataclass(frozen=True)
class StageOutcome:
    kind: OutcomeKind
    follow_ups: tuple[Job, ...] = ()
    reason: str | None = None
    retry_after: float | None = None
    spends_retry: bool = True
    run_ended: bool = False
    """This step ended the run (completed, failed or timed out): its webhooks are due."""

    @classmethod
    def done(cls, *follow_ups: Job, run_ended: bool = False) -> StageOutcome:
        return cls(OutcomeKind.DONE, follow_ups, run_ended=run_ended)

    @classmethod
    def retry(cls, after: float, reason: str, *, spends_retry: bool = True) -> StageOutcome:
        return cls(OutcomeKind.RETRY, reason=reason, retry_after=after, spends_retry=spends_retry)

    @classmethod
    def failed(cls, reason: str, *follow_ups: Job, run_ended: bool = False) -> StageOutcome:
        return cls(OutcomeKind.FAILED, follow_ups, reason=reason, run_ended=run_ended)

    @classmethod
    def skipped(cls, reason: str, *follow_ups: Job, run_ended: bool = False) -> StageOutcome:
        return cls(OutcomeKind.SKIPPED, follow_ups, reason=reason, run_ended=run_ended)
