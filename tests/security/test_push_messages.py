"""Whoever reaches a worker's push endpoint writes the whole message: it runs only for a
declared actor with arguments that fit, and without options of the pusher's choosing.
And the endpoint the deployment guide gives (the service root) works. Real worker, Google's
emulator pushing to it, PostgreSQL, the offline LLM."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import dramatiq
import pytest
from support.stack import StackFactory

from consensus_engine.devtools.loopback import http_request
from consensus_engine.devtools.process import free_port
from consensus_engine.domain.runs import RunStatus
from consensus_engine.messaging import job_queue


def envelope(message: dramatiq.Message[Any]) -> bytes:
    pushed = {
        "data": base64.b64encode(message.encode()).decode(),
        "messageId": uuid.uuid4().hex,
        "attributes": {"dramatiq_queue": message.queue_name},
    }
    return json.dumps({"message": pushed, "subscription": "projects/p/subscriptions/s"}).encode()


@pytest.mark.usefixtures("requires_google_emulator")
def test_pushed_messages_are_screened(make_stack: StackFactory) -> None:
    port = free_port()
    stack = make_stack(
        env={
            "ENV": "testing",  # the emulator signs no push requests
            "PUBSUB_DELIVERY": "push",
            "PUBSUB_PUSH_ENDPOINT": f"http://127.0.0.1:{port}",  # the guide's: the root
            "SWEEPER_REQUEUE_AFTER_SECONDS": "3600",  # only the pushes below send the run
        }
    )
    stack.start_worker(env={"WORKER_HTTP_PORT": str(port)})
    run_id = stack.submit(publish=False)
    queue = job_queue(stack.settings)

    def push(actor: str, args: tuple[Any, ...], **options: Any) -> int:
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue,
            actor_name=actor,
            args=args,
            kwargs={},
            options=options,
            message_timestamp=int(time.time() * 1000) - 10_000,
        )
        url = f"http://127.0.0.1:{port}/pubsub/push"
        return http_request(url, method="POST", body=envelope(message), timeout=60).status

    assert push("no_such_actor", (str(run_id),)) == 400
    assert push("expand", (str(run_id), "critic", "extra")) == 400
    # A one-millisecond age limit would have Dramatiq skip the message unrun.
    assert push("expand", (str(run_id),), max_age=1, max_retries=0) == 204

    run = stack.wait_for(run_id)
    assert run.status is RunStatus.COMPLETED, (run.error_code, run.error)
