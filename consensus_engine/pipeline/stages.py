"""The three stages of a run: expand, review (one persona), aggregate.

Each stage claims its step, works outside any transaction (LLM calls take seconds),
then settles the step and stores its result in one transaction, checking the claim is
still its own. So a duplicate, late or concurrent delivery changes nothing, and a
result is stored once or not at all. The stages know nothing of the broker: they say
what must be sent next in a :class:`StageResult`, and the caller sends it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import claims, repository
from consensus_engine.db.claims import Claim, ClaimOutcome
from consensus_engine.db.models import Run, StepProgress
from consensus_engine.db.types import utcnow
from consensus_engine.domain.aggregation import AggregationError
from consensus_engine.domain.personas import PersonaConfigError
from consensus_engine.domain.revisions import RevisionError
from consensus_engine.domain.runs import (
    AGGREGATE_STEP,
    EXPAND_STEP,
    RunStatus,
    StepStatus,
    persona_of_step,
    review_step,
)
from consensus_engine.llm import (
    CallRecord,
    LLMClient,
    LLMConfigurationError,
    LLMError,
    LLMPermanentError,
)
from consensus_engine.observability.logs import lifecycle
from consensus_engine.observability.metrics import pipeline_metrics
from consensus_engine.pipeline.work import (
    ExpandWork,
    ReviewWork,
    StageInputError,
    Work,
    aggregate_run,
)

_ERROR_LIMIT = 2000
_SILENT_ERRORS = {
    "TimeLimitExceeded": "the step ran past WORKER_STEP_TIMEOUT_SECONDS",
    "Shutdown": "the worker shut down during the step",
}
"""Dramatiq's interrupts carry no message; say what happened."""


@dataclass(frozen=True)
class StageSettings:
    approve_threshold: float
    revise_threshold: float
    review_quorum: int | None
    """Fewest successful reviews needed to aggregate; ``None``: every persona."""
    stale_after: float
    """Seconds without progress after which a claimed step is presumed abandoned."""


@dataclass(frozen=True)
class StageResult:
    """What happened, and what the caller must send next."""

    reviews: tuple[str, ...] = ()
    aggregate: bool = False
    skipped: str | None = None
    """Why nothing was done (a duplicate delivery, a finished run...)."""
    check_again_in: float | None = None
    """Another worker holds the step: look again after this many seconds."""
    failed: str | None = None
    """The step failed for good with this error."""


PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    LLMPermanentError,
    LLMConfigurationError,
    StageInputError,
    RevisionError,
    PersonaConfigError,
    AggregationError,
)
"""Retrying cannot help: a bad API key, a refused request, a run missing its inputs."""


def is_retryable(error: BaseException) -> bool:
    """Anything not known to be permanent may pass next time (rate limits, timeouts...)."""
    return not isinstance(error, PERMANENT_ERRORS)


def _describe(error: BaseException) -> tuple[str, str]:
    """(code, text) for the run's record; LLM errors carry their own code."""
    if isinstance(error, LLMError):
        return error.code, str(error)[:_ERROR_LIMIT]
    name = type(error).__name__
    code = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    detail = str(error) or _SILENT_ERRORS.get(name, "no detail given")
    return code, f"{name}: {detail}"[:_ERROR_LIMIT]


def _nothing(_session: Session, _run: Run) -> None:
    """The aggregate stage needs no LLM: all of its work happens while settling."""


class Pipeline:
    """The stages over one database and one LLM client; shared by every worker thread."""

    def __init__(
        self, sessions: sessionmaker[Session], llm: LLMClient, settings: StageSettings
    ) -> None:
        self.sessions = sessions
        self.llm = llm
        self.settings = settings

    # -- the stages ---------------------------------------------------------------------------

    def expand(self, run_id: uuid.UUID, *, holder: str, final_attempt: bool) -> StageResult:
        return self._stage(
            run_id, EXPAND_STEP, holder, final_attempt, ExpandWork.prepare, self._store_expand
        )

    def review(
        self, run_id: uuid.UUID, persona_id: str, *, holder: str, final_attempt: bool
    ) -> StageResult:
        return self._stage(
            run_id,
            review_step(persona_id),
            holder,
            final_attempt,
            lambda session, run: ReviewWork.prepare(session, run, persona_id),
            self._store_review,
        )

    def aggregate(self, run_id: uuid.UUID, *, holder: str, final_attempt: bool) -> StageResult:
        return self._stage(
            run_id, AGGREGATE_STEP, holder, final_attempt, _nothing, self._store_aggregate
        )

    # -- the common shape -----------------------------------------------------------------------

    def _stage(
        self,
        run_id: uuid.UUID,
        step_name: str,
        holder: str,
        final_attempt: bool,
        prepare: Callable[[Session, Run], Work | None],
        store: Callable[[Session, Run, StepProgress, Work | None], StageResult],
    ) -> StageResult:
        persona = persona_of_step(step_name)
        with self.sessions.begin() as session:
            claim = claims.claim_step(
                session, run_id, step_name, holder=holder, stale_after=self.settings.stale_after
            )
            if not claim.claimed:
                return self._not_claimed(claim, run_id, step_name)
            assert claim.run is not None and claim.step is not None
            attempt = claim.step.attempts
            if claim.job_started:
                lifecycle("job_started", run_id=run_id, step=step_name)
            if self._past_deadline(claim.run):
                return StageResult(skipped="the run passed its deadline")
            # A run missing an input fails its step like any other error, after the
            # claim has committed, instead of undoing the claim.
            work: Work | None = None
            unprepared: Exception | None = None
            try:
                work = prepare(session, claim.run)
            except Exception as error:
                unprepared = error
        lifecycle("step_started", run_id=run_id, step=step_name, persona=persona, attempt=attempt)
        started = time.monotonic()
        try:
            if unprepared is not None:
                raise unprepared
            if work is not None:
                work.run(self.llm)
            with self.sessions.begin() as session:
                held = claims.reclaim(session, run_id, step_name, holder=holder)
                if held is None:
                    return self._claim_lost(session, run_id, step_name, work)
                run, step = held
                if work is not None:
                    repository.record_llm_calls(session, run, work.calls)
                result = store(session, run, step, work)
        except BaseException as error:
            return self._failed(
                run_id, step_name, holder, error, final_attempt, work, time.monotonic() - started
            )
        elapsed = time.monotonic() - started
        metrics = pipeline_metrics()
        if work is not None:
            metrics.llm_calls(work.calls)
        metrics.step_finished(step=step_name, outcome="completed", seconds=elapsed)
        lifecycle(
            "step_completed",
            run_id=run_id,
            step=step_name,
            persona=persona,
            attempt=attempt,
            duration_ms=elapsed * 1000,
        )
        return result

    def _claim_lost(
        self, session: Session, run_id: uuid.UUID, step_name: str, work: Work | None
    ) -> StageResult:
        """Drop the result, but keep the record of the LLM calls: they were made and billed."""
        run = claims.lock_run(session, run_id)
        if run is not None and work is not None:
            repository.record_llm_calls(session, run, work.calls)
        pipeline_metrics().idempotent_skip(step=step_name)
        lifecycle("idempotent_skip", run_id=run_id, step=step_name, reason="claim lost")
        return StageResult(skipped="another worker took the step over")

    def _not_claimed(self, claim: Claim, run_id: uuid.UUID, step_name: str) -> StageResult:
        if claim.outcome is ClaimOutcome.HELD:
            lifecycle(
                "idempotent_skip",
                run_id=run_id,
                step=step_name,
                reason="held by another worker",
                held_by=claim.step.claimed_by if claim.step else None,
            )
            return StageResult(skipped="held elsewhere", check_again_in=claim.held_for)
        pipeline_metrics().idempotent_skip(step=step_name)
        lifecycle("idempotent_skip", run_id=run_id, step=step_name, reason=claim.outcome.value)
        return StageResult(skipped=claim.outcome.value)

    def _past_deadline(self, run: Run) -> bool:
        """Fail the run (in the caller's transaction) when the whole-run time limit passed."""
        if run.deadline_at is None or utcnow() < run.deadline_at:
            return False
        claims.time_out(run)
        self._finished(run)
        return True

    def _failed(
        self,
        run_id: uuid.UUID,
        step_name: str,
        holder: str,
        error: BaseException,
        final_attempt: bool,
        work: Work | None,
        elapsed: float,
    ) -> StageResult:
        """Hand the step back for a retry (re-raising), or fail it for good."""
        retry = is_retryable(error) and not final_attempt
        code, text = _describe(error)
        calls: list[CallRecord] = list(error.calls) if isinstance(error, LLMError) else []
        if work is not None and not calls:
            calls = list(work.calls)
        result = StageResult(failed=text)
        with self.sessions.begin() as session:
            held = claims.reclaim(session, run_id, step_name, holder=holder)
            if held is not None:
                run, step = held
                repository.record_llm_calls(session, run, calls)
                if retry:
                    claims.settle_step(step, StepStatus.PENDING, error=text)
                else:
                    claims.settle_step(step, StepStatus.FAILED, error=text)
                    result = self._after_final_failure(run, step_name, code, text)
        metrics = pipeline_metrics()
        metrics.llm_calls(calls)
        metrics.step_finished(
            step=step_name, outcome="retried" if retry else "failed", seconds=elapsed
        )
        lifecycle(
            "step_failed",
            run_id=run_id,
            step=step_name,
            persona=persona_of_step(step_name),
            duration_ms=elapsed * 1000,
            error=text,
            error_code=code,
            will_retry=retry,
        )
        if retry or isinstance(error, KeyboardInterrupt | SystemExit):
            raise error
        return result

    def _after_final_failure(self, run: Run, step_name: str, code: str, text: str) -> StageResult:
        if persona_of_step(step_name) is None:
            claims.end_run(run, RunStatus.FAILED, error_code=code, error=f"{step_name}: {text}")
            self._finished(run)
            return StageResult(failed=text)
        return StageResult(failed=text, aggregate=self._reviews_done(run))

    # -- storing results ------------------------------------------------------------------------

    def _store_expand(
        self, session: Session, run: Run, step: StepProgress, work: Work | None
    ) -> StageResult:
        assert isinstance(work, ExpandWork)
        plan = work.store(session, run)
        claims.settle_step(step, StepStatus.COMPLETED, metadata=work.metadata)
        session.flush()
        return StageResult(reviews=plan, aggregate=not plan and self._reviews_done(run))

    def _store_review(
        self, session: Session, run: Run, step: StepProgress, work: Work | None
    ) -> StageResult:
        assert isinstance(work, ReviewWork)
        work.store(session, run)
        claims.settle_step(step, StepStatus.COMPLETED, metadata=work.metadata)
        session.flush()
        return StageResult(aggregate=self._reviews_done(run))

    def _store_aggregate(
        self, session: Session, run: Run, step: StepProgress, _work: Work | None
    ) -> StageResult:
        outcome = aggregate_run(
            session,
            run,
            approve_threshold=self.settings.approve_threshold,
            revise_threshold=self.settings.revise_threshold,
            quorum=self.settings.review_quorum,
        )
        if outcome.error is not None:
            claims.settle_step(step, StepStatus.FAILED, error=outcome.error)
            claims.end_run(run, RunStatus.FAILED, error_code="quorum_not_met", error=outcome.error)
        else:
            claims.settle_step(step, StepStatus.COMPLETED, metadata=outcome.metadata)
            claims.end_run(run, RunStatus.COMPLETED)
        session.flush()
        self._finished(run)
        return StageResult(failed=outcome.error)

    @staticmethod
    def _reviews_done(run: Run) -> bool:
        """The barrier: every review step has ended and the aggregate has not started.

        Called with the run locked, so exactly one transaction sees the last review end.
        """
        steps = {s.step_name: s for s in run.steps}
        reviews = [s for name, s in steps.items() if persona_of_step(name) is not None]
        aggregate_step = steps.get(AGGREGATE_STEP)
        return (
            all(s.status.is_terminal for s in reviews)
            and aggregate_step is not None
            and aggregate_step.status is StepStatus.PENDING
        )

    @staticmethod
    def _finished(run: Run) -> None:
        """The run ended: its lifecycle event and outcome metrics."""
        seconds = None
        if run.completed_at is not None and run.queued_at is not None:
            seconds = (run.completed_at - run.queued_at).total_seconds()
        decision = run.decision.value if run.decision is not None else None
        pipeline_metrics().run_finished(status=run.status.value, decision=decision, seconds=seconds)
        completed = run.status is RunStatus.COMPLETED
        lifecycle(
            "job_completed" if completed else "job_failed",
            run_id=run.id,
            duration_ms=None if seconds is None else seconds * 1000,
            status=run.status.value,
            decision=decision,
            error_code=run.error_code,
            error=run.error,
        )
