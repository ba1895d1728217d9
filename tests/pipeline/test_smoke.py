"""The shortest path through a real worker: one run, start to decision."""

from __future__ import annotations

from support.stack import PipelineStack

from consensus_engine.domain.runs import RunStatus


def test_a_run_completes_through_a_worker_process(stack: PipelineStack) -> None:
    stack.start_worker()
    run = stack.wait_for(stack.submit())
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.decision is not None
    assert len(run.reviews) == 5
