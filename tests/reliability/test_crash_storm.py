"""A crash storm: the worker is SIGKILLed every few seconds for two minutes while thirty
runs go through it (with 20 % of LLM calls failing), then left alone.

The step time limit is the production default (300 s): before claims had heartbeats, a
killed worker's step waited out that limit before anyone took it over.

What makes the runs finish soon after the storm: a worker leases no more messages than it
has threads, so few unstarted messages count a delivery at each crash; a killed worker's
claims stop their heartbeat and are taken over within the claim timeout, however long the
step's time limit; a settled step delivered again sends what follows it; and messages
Pub/Sub dead-lettered anyway are read back and sent again by the sweeper.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from support.pubsub import EMBEDDED, PubSubBackend
from support.stack import StackFactory

from consensus_engine.db.types import utcnow
from consensus_engine.devtools.pubsub_server import EmbeddedPubSubServer
from consensus_engine.devtools.service import WorkerProcess
from consensus_engine.domain.runs import RunStatus

RUNS = 30
STORM_SECONDS = 120.0
KILL_EVERY = (5.0, 16.0)
SETTLE_SECONDS = 90.0


@pytest.fixture
def pubsub_emulator() -> Iterator[PubSubBackend]:
    """This test's own embedded Pub/Sub server rather than Google's emulator jar.

    The jar keeps handing messages to the streams of SIGKILLed subscribers for minutes
    (measured: 90 s after three kills, half of newly published messages still sat 10 s
    in dead streams first), so after a storm it would measure the jar. Pub/Sub ends a
    stream when its client's connection closes, and so does this server; the messages
    the dead stream held come back after their ack deadline in both.
    """
    server = EmbeddedPubSubServer().start()
    try:
        yield PubSubBackend(server.address, EMBEDDED, False, server.stop)
    finally:
        server.stop()


def test_every_run_completes_soon_after_a_crash_storm(make_stack: StackFactory) -> None:
    stack = make_stack(
        env={
            "WORKER_STEP_TIMEOUT_SECONDS": "300",
            "WORKER_JOB_TIMEOUT_SECONDS": "1800",
            "SWEEPER_INTERVAL_SECONDS": "30",
            "MAX_RETRIES_PER_PERSONA": "5",
        },
        latency_ms=2000,
        error_rate=0.2,
        seed=7,
    )
    worker: WorkerProcess = stack.start_worker()

    pace = random.Random(11)  # a reproducible storm
    run_ids: list[uuid.UUID] = []
    kills = 0
    started = time.monotonic()
    next_kill = started + pace.uniform(*KILL_EVERY)
    while (now := time.monotonic()) < started + STORM_SECONDS:
        if len(run_ids) < min(RUNS, RUNS * (now - started) / STORM_SECONDS + 1):  # all along
            run_ids.append(stack.submit(f"Idea {len(run_ids)}: a repair café finder."))
        if now >= next_kill:
            worker.kill()
            last_kill = utcnow()
            kills += 1
            worker = stack.start_worker(wait_ready=False, name=f"after-kill-{kills}")
            next_kill = now + pace.uniform(*KILL_EVERY)
        threading.Event().wait(0.2)
    assert len(run_ids) == RUNS and kills > 0

    ended = stack.wait_for_runs(run_ids, timeout=SETTLE_SECONDS, poll_s=0.5, workers=[worker])
    runs = stack.runs(run_ids)
    unfinished = [
        (run.id, run.status, [(s.step_name, s.status) for s in run.steps])
        for run in runs
        if not run.status.is_terminal
    ]
    assert ended == RUNS, (unfinished, worker.logs()[-6000:])
    assert {run.status for run in runs} == {RunStatus.COMPLETED}, [
        (run.status, run.error_code, run.error) for run in runs
    ]
    for run in runs:
        counts = stack.row_counts(run.id)
        assert counts["proposal_versions"] == 1
        assert counts["persona_reviews"] == len(run.personas)
        assert run.decision_record is not None
    last = max(run.completed_at for run in runs if run.completed_at is not None)
    after = max(last - last_kill, timedelta(0)).total_seconds()
    print(
        f"\ncrash storm: {kills} kills in {STORM_SECONDS:.0f} s; "
        f"last run completed {after:.1f} s after the last kill"
    )
