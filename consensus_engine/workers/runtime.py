"""What a worker process shares between its threads: database pool, LLM client, pipeline.

Built on first use rather than at import, so each process that Dramatiq forks opens
its own connections instead of inheriting its parent's sockets.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db.engine import create_engine_from_settings, session_factory
from consensus_engine.db.rate_limits import DatabaseBuckets
from consensus_engine.llm import LLMClient
from consensus_engine.pipeline.call_gate import call_gate
from consensus_engine.pipeline.retries import RetryPolicy
from consensus_engine.pipeline.stages import Pipeline, StageSettings
from consensus_engine.pipeline.work import Thresholds
from consensus_engine.settings import Settings


def working_limit(step_timeout: float) -> float:
    """How long a step's work is vouched for: its time limit plus a margin for the worker
    to record the failure (half the limit, 2 to 15 seconds)."""
    return step_timeout + min(15.0, max(2.0, step_timeout / 2))


def stage_settings(settings: Settings) -> StageSettings:
    return StageSettings(
        thresholds=Thresholds(
            approve=settings.approve_threshold,
            revise=settings.revise_threshold,
            quorum=settings.review_quorum,
        ),
        retries=RetryPolicy.from_settings(settings),
        stale_after=settings.worker_claim_timeout_seconds,
        working_limit=working_limit(settings.worker_step_timeout_seconds),
        models=settings.metric_models,
        tenants=settings.budgets.named,
    )


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pipeline: Pipeline


_lock = threading.Lock()
_runtimes: dict[int, Runtime] = {}


def runtime(settings: Settings) -> Runtime:
    """This process's runtime, created once per process."""
    pid = os.getpid()
    with _lock:
        if pid not in _runtimes:
            engine = create_engine_from_settings(settings)
            sessions = session_factory(engine)
            step_limit = settings.worker_step_timeout_seconds
            gate = call_gate(settings, sessions, DatabaseBuckets(engine), within_seconds=step_limit)
            llm = LLMClient.from_settings(settings, within_seconds=step_limit, gate=gate)
            _runtimes[pid] = Runtime(
                settings=settings,
                engine=engine,
                sessions=sessions,
                pipeline=Pipeline(sessions, llm, stage_settings(settings)),
            )
        return _runtimes[pid]
