"""Running one stage of a run: claim the step, do the work, settle the step.

Each stage claims its step, works outside any transaction (LLM calls take seconds),
then settles the step and stores its result in one transaction, checking the claim is
still its own. So a duplicate, late or concurrent delivery changes nothing, and a
result is stored once or not at all. The stages know nothing of the broker: they
return a :class:`StageOutcome`, and the caller sends what it names.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

from opentelemetry import trace
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import claims, writes
from consensus_engine.db.claims import Claim, ClaimOutcome, Held
from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.runs import (
    Job,
    RunStatus,
    Stage,
    StepStatus,
    parse_step,
    progress,
)
from consensus_engine.llm import CallRecord, LLMClient, LLMError
from consensus_engine.observability.logs import lifecycle
from consensus_engine.observability.metrics import pipeline_metrics
from consensus_engine.pipeline.budget_gate import CallOverBudget
from consensus_engine.pipeline.heartbeat import Heartbeat
from consensus_engine.pipeline.outcome import StageOutcome
from consensus_engine.pipeline.retries import (
    PERMANENT_ERRORS,
    RetryPolicy,
    is_outage,
    spends_retry,
)
from consensus_engine.pipeline.sweeper import resumable_jobs
from consensus_engine.pipeline.work import PREPARE, Stored, Thresholds, Work

logger = logging.getLogger(__name__)
_ERROR_LIMIT = 2000
_SILENT_ERRORS = {
    "TimeLimitExceeded": "the step ran past WORKER_STEP_TIMEOUT_SECONDS",
    "Shutdown": "the worker shut down during the step",
}
"""Dramatiq's interrupts carry no message; say what happened."""


@dataclass(frozen=True)
class StageSettings:
    thresholds: Thresholds
    retries: RetryPolicy
    stale_after: float
    """Seconds without a heartbeat after which a claimed step is presumed abandoned."""
    working_limit: float
    """The longest a step's work is vouched for by heartbeats (its time limit and a margin)."""
    models: frozenset[str] = frozenset()
    """The configured models: metrics name these; any other model is counted as "other"."""
    tenants: frozenset[str] = frozenset()
    """The tenants the budgets name: metrics name these; any other tenant is "other"."""


def _describe(error: BaseException) -> tuple[str, str]:
    """(code, text) for the run's record, which its tenant reads.

    LLM errors carry their own code and a safe message, and so do the pipeline's own
    errors; anything else (a database error quoting its SQL, say) is stored by name only,
    and its detail goes to this worker's log.
    """
    if isinstance(error, LLMError):
        return error.code, str(error)[:_ERROR_LIMIT]
    name = type(error).__name__
    code = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    if is_outage(error):  # its text names the database's address; an outage needs no trace
        logger.warning("Step interrupted: the database is unavailable (%s).", name)
        return code, f"{name}: the database was unavailable"
    if name in _SILENT_ERRORS:
        return code, f"{name}: {_SILENT_ERRORS[name]}"
    if isinstance(error, PERMANENT_ERRORS):
        return code, f"{name}: {error or 'no detail given'}"[:_ERROR_LIMIT]
    logger.error("Step failed with %s.", name, exc_info=error)
    return code, f"{name}: an internal error; the worker's log has the detail"


class Pipeline:
    """The stages over one database and one LLM client; shared by every worker thread."""

    def __init__(
        self, sessions: sessionmaker[Session], llm: LLMClient, settings: StageSettings
    ) -> None:
        self.sessions = sessions
        self.llm = llm
        self.settings = settings
        self.heartbeat = Heartbeat(
            sessions, interval=settings.stale_after / 3, give_up_after=settings.working_limit
        )

    def run(self, job: Job, *, holder: str, retries: int = 0) -> StageOutcome:
        """Do ``job`` for ``holder``; ``retries``: how often its message was retried already."""
        step_name = job.step_name
        persona = job.persona_id
        # The span around this stage (its message's) names the run and step it worked on.
        trace.get_current_span().set_attributes(
            {"consensus.run_id": str(job.run_id), "consensus.step": step_name}
        )
        try:
            prepared = self._claim(job, holder)
        except BaseException as error:  # the database may be down, or a time limit struck
            return self._unclaimed(job, error, retries)
        if isinstance(prepared, StageOutcome):
            return prepared
        attempt, work, unprepared = prepared
        lifecycle(
            "step_started", run_id=job.run_id, step=step_name, persona=persona, attempt=attempt
        )
        started = time.monotonic()
        try:
            if unprepared is not None:
                raise unprepared
            assert work is not None
            with self.heartbeat.beating(job.run_id, step_name, holder):
                work.run(self.llm)
            with self.sessions.begin() as session:
                held = claims.reclaim(session, job.run_id, step_name, holder=holder)
                if held is None:
                    return self._claim_lost(session, job, work)
                writes.record_llm_calls(session, held.run, work.calls)
                outcome = self._settle(session, held, work.store(session, held.run), work)
                session.flush()
        except BaseException as error:  # a time limit is an Interrupt, not an Exception
            return self._failed(job, holder, error, retries, work, time.monotonic() - started)
        elapsed = time.monotonic() - started
        self._count_calls(work.calls, work.tenant)
        pipeline_metrics().step_finished(step=step_name, outcome="completed", seconds=elapsed)
        lifecycle(
            "step_completed",
            run_id=job.run_id,
            step=step_name,
            persona=persona,
            attempt=attempt,
            duration_ms=elapsed * 1000,
        )
        return outcome

    def _claim(
        self, job: Job, holder: str
    ) -> StageOutcome | tuple[int, Work | None, Exception | None]:
        """Claim the step and prepare its work in one transaction; or why nothing is to do."""
        with self.sessions.begin() as session:
            claim = claims.claim_step(
                session,
                job.run_id,
                job.step_name,
                holder=holder,
                stale_after=self.settings.stale_after,
            )
            if not claim.claimed:
                return self._not_claimed(claim, job)
            assert claim.run is not None
            if claim.job_started:
                lifecycle("job_started", run_id=job.run_id, step=job.step_name)
            if self._past_deadline(claim.run):
                return StageOutcome.skipped("the run passed its deadline", run_ended=True)
            # A run missing an input fails its step like any other error, after the
            # claim has committed, instead of undoing the claim.
            try:
                prepare = PREPARE[job.stage]
                work = prepare(session, claim.run, job.persona_id, self.settings.thresholds)
            except Exception as error:
                return claim.attempts, None, error
            return claim.attempts, work, None

    def _unclaimed(self, job: Job, error: BaseException, retries: int) -> StageOutcome:
        """The claim itself failed: nothing to hand back, so only the message is retried."""
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise error
        code, text = _describe(error)
        retry_after = self.settings.retries.retry_after(error, retries)
        lifecycle(
            "step_failed",
            run_id=job.run_id,
            step=job.step_name,
            persona=job.persona_id,
            error=text,
            error_code=code,
            will_retry=retry_after is not None,
        )
        if retry_after is None:
            return StageOutcome.failed(text)
        return StageOutcome.retry(retry_after, text, spends_retry=spends_retry(error))

    @staticmethod
    def _settle(session: Session, held: Held, stored: Stored, work: Work) -> StageOutcome:
        """Settle the step as the stored result says, and name the jobs that follow."""
        run = held.run
        if stored.failure is not None:
            code, text = stored.failure
            claims.settle_step(session, held, StepStatus.FAILED, error=text)
            claims.end_run(run, RunStatus.FAILED, error_code=code, error=text)
            _finished(run)
            return StageOutcome.failed(text, run_ended=True)
        claims.settle_step(session, held, StepStatus.COMPLETED, metadata=work.metadata)
        if stored.completes_run:
            claims.end_run(run, RunStatus.COMPLETED)
            _finished(run)
            return StageOutcome.done(run_ended=True)
        return StageOutcome.done(*_advance(session, run, parse_step(held.step_name)[0]))

    def _claim_lost(self, session: Session, job: Job, work: Work) -> StageOutcome:
        """Drop the result, but keep the record of the LLM calls: they were made and billed
        (under the tenant alone when the run was deleted meanwhile)."""
        run = claims.lock_run(session, job.run_id)
        if run is not None:
            writes.record_llm_calls(session, run, work.calls)
        elif work.calls:
            writes.record_llm_calls(session, None, work.calls, tenant=work.tenant)
        pipeline_metrics().idempotent_skip(step=job.step_name)
        lifecycle("idempotent_skip", run_id=job.run_id, step=job.step_name, reason="claim lost")
        return StageOutcome.skipped("another worker took the step over")

    def _not_claimed(self, claim: Claim, job: Job) -> StageOutcome:
        if claim.outcome is ClaimOutcome.HELD:
            lifecycle(
                "idempotent_skip",
                run_id=job.run_id,
                step=job.step_name,
                reason="held by another worker",
                held_by=claim.held_by,
            )
            # Look again, on the same queue, once the holder's claim would go stale.
            again = replace(job, delay_seconds=claim.held_for + 1)
            return StageOutcome.skipped("held elsewhere", again)
        pipeline_metrics().idempotent_skip(step=job.step_name)
        lifecycle(
            "idempotent_skip", run_id=job.run_id, step=job.step_name, reason=claim.outcome.value
        )
        if claim.outcome is ClaimOutcome.DONE and claim.run is not None:
            # Delivered again although its step settled: the worker that settled it may
            # have died before sending what follows, so send that (duplicates are harmless).
            return StageOutcome.skipped(claim.outcome.value, *_not_started_after(claim.run, job))
        return StageOutcome.skipped(claim.outcome.value)

    def _past_deadline(self, run: Run) -> bool:
        """Fail the run (in the caller's transaction) when the whole-run time limit passed."""
        if run.deadline_at is None or utcnow() < run.deadline_at:
            return False
        claims.time_out(run)
        _finished(run)
        return True

    def _failed(
        self,
        job: Job,
        holder: str,
        error: BaseException,
        retries: int,
        work: Work | None,
        elapsed: float,
    ) -> StageOutcome:
        """Hand the step back for a retry, or fail it for good."""
        retry_after = self.settings.retries.retry_after(error, retries)
        code, text = _describe(error)
        calls: list[CallRecord] = list(error.calls) if isinstance(error, LLMError) else []
        if work is not None and not calls:
            calls = list(work.calls)
        follow_ups: tuple[Job, ...] = ()
        ended = False
        spent = spends_retry(error)
        try:
            with self.sessions.begin() as session:
                held = claims.reclaim(session, job.run_id, job.step_name, holder=holder)
                if held is not None:
                    writes.record_llm_calls(session, held.run, calls)
                    if retry_after is not None:
                        claims.hand_back(session, held, error=text, spent=spent)
                    else:
                        claims.settle_step(session, held, StepStatus.FAILED, error=text)
                        follow_ups = self._after_final_failure(
                            session, held.run, job, error, code, text
                        )
                        ended = held.run.status.is_terminal
        except Exception as unrecorded:
            if not is_outage(unrecorded):
                raise
            # The step stays claimed, its heartbeat silent: the next try takes it over.
            logger.warning(
                "The database is unavailable: step %s of run %s and its %d LLM call(s) "
                "go unrecorded; it will be tried again.",
                job.step_name,
                job.run_id,
                len(calls),
            )
            spent = False
            retry_after = self.settings.retries.retry_after(unrecorded, retries)
        self._count_calls(calls, work.tenant if work is not None else None)
        pipeline_metrics().step_finished(
            step=job.step_name,
            outcome="failed" if retry_after is None else "retried",
            seconds=elapsed,
        )
        lifecycle(
            "step_failed",
            run_id=job.run_id,
            step=job.step_name,
            persona=job.persona_id,
            duration_ms=elapsed * 1000,
            error=text,
            error_code=code,
            will_retry=retry_after is not None,
        )
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise error
        if retry_after is not None:
            return StageOutcome.retry(retry_after, text, spends_retry=spent)
        return StageOutcome.failed(text, *follow_ups, run_ended=ended)

    def _count_calls(self, calls: list[CallRecord], tenant: str | None) -> None:
        settings = self.settings
        pipeline_metrics().llm_calls(
            calls, models=settings.models, tenant=tenant, tenants=settings.tenants
        )

    @staticmethod
    def _after_final_failure(
        session: Session, run: Run, job: Job, error: BaseException, code: str, text: str
    ) -> tuple[Job, ...]:
        """A failed review may still let the run aggregate, unless it failed because the
        tenant's budget would be crossed: the run stops there, keeping the reviews it has.
        A failed second round leaves the persona's first review standing. A failed chair
        leaves the decided run completed, the chair step failed and retryable. Any other
        stage fails the run."""
        if job.stage is Stage.CHAIR:
            claims.end_run(run, RunStatus.COMPLETED)
            _finished(run)
            return ()
        if job.stage.per_persona and not isinstance(error, CallOverBudget):
            return _advance(session, run, job.stage)
        claims.end_run(run, RunStatus.FAILED, error_code=code, error=f"{job.step_name}: {text}")
        _finished(run)
        return ()


def _advance(session: Session, run: Run, ended: Stage) -> tuple[Job, ...]:
    """The barrier, after a step of stage ``ended`` ended: the jobs of the next stage, when
    this ending closed its own. Called with the run locked, so exactly one transaction
    sees a stage's last step end. It reads the steps' statuses alone, not the step rows as
    objects; debate steps whose first round failed are marked skipped on the way."""
    statuses = claims.step_statuses(session, run.id)
    where = progress(statuses)
    if where.never:
        claims.skip_steps(session, run.id, where.never)
    if where.stage is None or where.stage is ended:
        return ()
    pending = (name for name in where.open_steps if statuses[name] is StepStatus.PENDING)
    return tuple(Job.of_step(name, run.id, run.priority) for name in pending)


def _not_started_after(run: Run, job: Job) -> list[Job]:
    """The jobs of later stages that the run could start now but has not."""
    later = list(Stage)[list(Stage).index(job.stage) + 1 :]
    pending = resumable_jobs(run, now=utcnow(), stale_after=math.inf, unstarted_after=0.0)
    return [follow_up for follow_up in pending.jobs if follow_up.stage in later]


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
