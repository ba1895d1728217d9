"""Push delivery fails closed: a production worker will not take pushed messages it cannot
authenticate, and a token is always checked for its audience."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from support.stack import StackFactory

from consensus_engine.settings import load_settings
from consensus_engine.workers.push_auth import PushAuthError, PushTokenVerifier
from security.google_tokens import Issuer, serving_certs

ENDPOINT = "https://pipeline-worker.example.run.app/pubsub/push"
ACCOUNT = "pusher@project.iam.gserviceaccount.com"


def test_a_production_worker_without_push_authentication_refuses_to_start(
    make_stack: StackFactory,
) -> None:
    stack = make_stack()  # ENV=production, as the tests' workers run
    worker = stack.start_worker(
        env={"PUBSUB_DELIVERY": "push"},
        entry_point=[sys.executable, "-m", "consensus_engine.workers.pipeline_worker"],
        wait_ready=False,
    )
    try:
        code = worker.popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker started with push delivery and no token verification")
    assert code != 0
    logs = worker.logs()
    assert "PUBSUB_PUSH_SERVICE_ACCOUNT" in logs and "PUBSUB_PUSH_ENDPOINT" in logs
    assert "Traceback" not in logs  # one clear line, not a stack trace


@pytest.fixture
def issuer() -> Issuer:
    return Issuer(ENDPOINT, ACCOUNT)


@pytest.fixture
def certs_url(issuer: Issuer) -> Iterator[str]:
    with serving_certs(issuer) as url:
        yield url


def test_a_token_for_another_service_is_refused_when_only_the_account_is_set(
    issuer: Issuer, certs_url: str
) -> None:
    """No PUBSUB_PUSH_AUDIENCE: the push endpoint is the audience, as Pub/Sub sets it."""
    settings = load_settings(
        env="production",
        pubsub_delivery="push",
        pubsub_push_endpoint=ENDPOINT,
        pubsub_push_service_account=ACCOUNT,
    )
    verifier = PushTokenVerifier.from_settings(settings, certs_url=certs_url)
    assert verifier is not None
    verifier.verify(f"Bearer {issuer.token()}")
    elsewhere = issuer.token(aud="https://another-service.example.run.app/")
    with pytest.raises(PushAuthError) as refused:
        verifier.verify(f"Bearer {elsewhere}")
    assert refused.value.status == 403
