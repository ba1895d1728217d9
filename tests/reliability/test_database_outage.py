"""A database outage in the middle of twenty runs, through real worker processes.

The workers reach PostgreSQL through a TCP proxy that is cut for 20 s and then restored.
Stages that meet the outage (claiming, storing, handing back) come back every few seconds
without spending their retries, and claims left behind by the outage are taken over once
their heartbeat is silent: every run completes, and nothing is stored twice.
"""

from __future__ import annotations

import threading
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from support.stack import PipelineStack, StackFactory
from support.tcp_proxy import TcpProxy

from consensus_engine.db.models import Run
from consensus_engine.db.types import utcnow
from consensus_engine.domain.runs import RunStatus, StepStatus

RUNS = 20
OUTAGE_SECONDS = 20.0


def completed_count(stack: PipelineStack, run_ids: list[uuid.UUID]) -> int:
    query = sa.select(sa.func.count()).where(Run.id.in_(run_ids), Run.status == RunStatus.COMPLETED)
    with stack.sessions() as session:
        return session.scalar(query) or 0


def test_every_run_completes_after_a_database_outage(make_stack: StackFactory) -> None:
    stack = make_stack(
        env={"MAX_RETRIES_PER_PERSONA": "2", "WORKER_JOB_TIMEOUT_SECONDS": "600"},
        latency_ms=700,
    )
    url = make_url(stack.settings.database_url.get_secret_value())  # type: ignore[union-attr]
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        worker = stack.start_worker(env={"DATABASE_URL": proxied})
        run_ids = [
            stack.submit(f"Idea {n}: a shared tool library for a street.") for n in range(RUNS)
        ]

        # Cut once a few runs have completed and the rest are under way.
        deadline = time.monotonic() + 60
        while completed_count(stack, run_ids) < 3:
            assert time.monotonic() < deadline, worker.logs()[-4000:]
            threading.Event().wait(0.1)
        proxy.cut()
        done_at_cut = completed_count(stack, run_ids)
        threading.Event().wait(OUTAGE_SECONDS)
        proxy.restore()
        restored_at = utcnow()

        ended = stack.wait_for_runs(run_ids, timeout=180, poll_s=0.2, workers=[worker])
        assert ended == RUNS, worker.logs()[-6000:]

    runs = stack.runs(run_ids)
    assert done_at_cut < RUNS
    assert {run.status for run in runs} == {RunStatus.COMPLETED}, [
        (run.status, run.error_code, run.error) for run in runs
    ]
    for run in runs:
        assert stack.row_counts(run.id)["proposal_versions"] == 1
        assert stack.row_counts(run.id)["persona_reviews"] == len(run.personas)
        assert run.decision_record is not None
        assert all(step.status is StepStatus.COMPLETED for step in run.steps)
    recovery = (
        max(run.completed_at for run in runs if run.completed_at) - restored_at
    ).total_seconds()
    print(
        f"\ndatabase outage: {done_at_cut}/{RUNS} runs done at the cut, "
        f"{OUTAGE_SECONDS:.0f} s outage, last run completed {recovery:.1f} s after the restore"
    )
