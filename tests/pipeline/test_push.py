"""Push delivery as the guide deploys it on Cloud Run: Pub/Sub POSTs to the worker."""

from __future__ import annotations

import pytest
from support.stack import StackFactory

from consensus_engine.devtools.process import free_port
from consensus_engine.domain.runs import RunStatus


@pytest.mark.usefixtures("requires_google_emulator")
def test_the_emulator_pushes_every_stage_to_the_worker_endpoint(make_stack: StackFactory) -> None:
    port = free_port()
    # The emulator signs no push requests, which production refuses (tests/security).
    stack = make_stack(
        env={
            "ENV": "testing",
            "PUBSUB_DELIVERY": "push",
            "PUBSUB_PUSH_ENDPOINT": f"http://127.0.0.1:{port}/pubsub/push",
        }
    )
    worker = stack.start_worker(env={"WORKER_HTTP_PORT": str(port)})

    run = stack.wait_for(stack.submit())

    assert run.status is RunStatus.COMPLETED, run.error
    assert len(run.reviews) == 5
    completed = {e["step"] for e in worker.events() if e["lifecycle_event"] == "step_completed"}
    assert completed >= {"expand", "aggregate", "review_critic"}
