"""The worker's HTTP endpoint: probes, routing, limits and push authentication.

Real servers on 127.0.0.1 and a real push broker (with no Pub/Sub behind it:
building one does no I/O, and with no worker running its inbox answers every
valid push with RETRY, which is how these tests see a request got through).
Tokens are signed with a fresh RSA key whose certificate a local server
publishes in the format of Google's certificate endpoint.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from security.google_tokens import Issuer, serving_certs

from brokers.pubsub import PubSubBroker
from consensus_engine import readiness
from consensus_engine.workers.http import MAX_BODY_BYTES, WorkerHTTPServer
from consensus_engine.workers.push_auth import PushAuthError, PushTokenVerifier

pytestmark = pytest.mark.timeout(60)

AUDIENCE = "https://worker.example.run.app/pubsub/push"
ACCOUNT = "pusher@project.iam.gserviceaccount.com"
SECRET = "postgresql://admin:hunter2@db.internal:5432/consensus"

ServerFactory = Callable[..., WorkerHTTPServer]
Reply = tuple[int, dict[str, Any] | None]


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request on its own connection; the status and the JSON body, if any."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        data = reply.read()
    finally:
        connection.close()
    return reply.status, json.loads(data) if data else None


def push_envelope() -> bytes:
    """A well-formed push body (its message need not decode: only routing is tested)."""
    return json.dumps({"message": {"data": "", "messageId": "1"}, "subscription": "s"}).encode()


@pytest.fixture
def push_broker() -> Iterator[PubSubBroker]:
    broker = PubSubBroker(
        project="test-project", emulator_host="127.0.0.1:9", auto_create=False, delivery="push"
    )
    yield broker
    broker.close()


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Starts servers on 127.0.0.1 (a free port unless told); stops them at teardown."""
    servers: list[WorkerHTTPServer] = []

    def make(port: int = 0, **options: Any) -> WorkerHTTPServer:
        settings: dict[str, Any] = {
            "checks": {},
            "inbox": None,
            "verifier": None,
            "push_timeout": 5.0,
        }
        settings.update(options)
        server = WorkerHTTPServer("127.0.0.1", port, **settings)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# -- probes -------------------------------------------------------------------------------


def test_liveness_follows_alive(make_server: ServerFactory) -> None:
    alive = threading.Event()
    alive.set()
    server = make_server(alive=alive.is_set)

    assert request(server.port, "GET", "/healthz") == (200, {"status": "ok"})
    alive.clear()
    assert request(server.port, "GET", "/healthz") == (503, {"status": "unavailable"})


def test_liveness_that_raises_is_not_alive(make_server: ServerFactory) -> None:
    def broken() -> bool:
        raise RuntimeError(SECRET)

    status, body = request(make_server(alive=broken).port, "GET", "/healthz")
    assert (status, body) == (503, {"status": "unavailable"})


def test_readiness_reports_every_check(make_server: ServerFactory) -> None:
    server = make_server(checks={"database": lambda: None, "broker": lambda: None})

    status, body = request(server.port, "GET", "/readyz")
    assert status == 200
    assert body == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_failing_check_is_named_but_not_explained(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def database() -> None:
        raise ConnectionError(f"could not connect to {SECRET}")

    server = make_server(checks={"database": database, "broker": lambda: None})
    with caplog.at_level("WARNING", logger="consensus_engine.readiness"):
        status, body = request(server.port, "GET", "/readyz?verbose=1")

    assert status == 503
    assert body == {"status": "failing", "checks": {"database": "unavailable", "broker": "ok"}}
    # The operator sees why in the log; the client never does.
    [record] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert SECRET in record.getMessage()
    assert record.exc_info is None  # one line per failed probe, not a traceback


def test_check_that_hangs_fails_within_the_bound(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readiness, "CHECK_TIMEOUT_SECONDS", 0.3)
    release = threading.Event()
    server = make_server(checks={"database": release.wait, "broker": lambda: None})
    try:
        started = time.monotonic()
        status, body = request(server.port, "GET", "/readyz")
        took = time.monotonic() - started
    finally:
        release.set()

    assert status == 503
    assert body == {"status": "failing", "checks": {"database": "unavailable", "broker": "ok"}}
    assert 0.3 <= took < 3


# -- routing and limits -------------------------------------------------------------------


def test_unknown_routes_are_not_found(
    make_server: ServerFactory, push_broker: PubSubBroker
) -> None:
    with_inbox = make_server(inbox=push_broker.push_inbox)
    without_inbox = make_server()

    assert request(with_inbox.port, "GET", "/") == (404, {"error": "not found"})
    assert request(with_inbox.port, "POST", "/healthz", b"{}") == (404, {"error": "not found"})
    assert request(with_inbox.port, "GET", "/pubsub/push") == (404, {"error": "not found"})
    assert request(with_inbox.port, "POST", "/pubsub/pushx", b"{}") == (
        404,
        {"error": "not found"},
    )
    # No inbox: the worker pulls, and has no push endpoint at all.
    assert request(without_inbox.port, "POST", "/pubsub/push", push_envelope()) == (
        404,
        {"error": "not found"},
    )
    # The control: the same request where there is an inbox gets through to it.
    assert request(with_inbox.port, "POST", "/pubsub/push", push_envelope())[0] == 400


def test_unsupported_method_gets_json_without_server_details(make_server: ServerFactory) -> None:
    server = make_server()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("DELETE", "/healthz")
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()

    assert reply.status == 501
    assert json.loads(body) == {"error": "not implemented"}
    assert reply.getheader("Server") == "worker"


def test_bad_bodies_are_refused(make_server: ServerFactory, push_broker: PubSubBroker) -> None:
    port = make_server(inbox=push_broker.push_inbox).port

    assert request(port, "POST", "/pubsub/push", b"{not json") == (400, {"error": "invalid json"})
    for body in (b"[]", b'{"message": "x"}', b'{"subscription": "s"}'):
        assert request(port, "POST", "/pubsub/push", body) == (
            400,
            {"error": "not a pub/sub push envelope"},
        )
    # A well-formed envelope whose data is no Dramatiq message, with no queue to
    # dead-letter it under: the inbox rejects it.
    assert request(port, "POST", "/pubsub/push", push_envelope()) == (400, {"error": "rejected"})


def test_missing_length_is_refused(make_server: ServerFactory, push_broker: PubSubBroker) -> None:
    port = make_server(inbox=push_broker.push_inbox).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"POST /pubsub/push HTTP/1.1\r\nHost: worker\r\n\r\n")
        head = client.recv(1024)

    assert head.startswith(b"HTTP/1.0 411 ")


def test_oversized_body_is_refused_without_reading_it(
    make_server: ServerFactory, push_broker: PubSubBroker
) -> None:
    """The client announces a body over the cap and sends a few bytes: the answer
    comes at once, where reading the announced body would wait for it."""
    port = make_server(inbox=push_broker.push_inbox).port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(
            b"POST /pubsub/push HTTP/1.1\r\nHost: worker\r\n"
            + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
            + b'{"message": '
        )
        reply = client.makefile("rb").read()

    assert reply.startswith(b"HTTP/1.0 413 ")
    assert reply.endswith(b'{"error":"payload too large"}')


def test_largest_message_fits_under_the_cap() -> None:
    """Pub/Sub's biggest message, base64-encoded in an envelope, is still accepted."""
    data = "A" * (4 * -(-10_000_000 // 3))  # base64 of 10,000,000 bytes
    attributes = {f"attribute-{n:03}": "v" * 1024 for n in range(100)}
    envelope = json.dumps({"message": {"data": data, "attributes": attributes}})
    assert len(envelope) < MAX_BODY_BYTES


# -- several processes, one port ----------------------------------------------------------


def test_two_servers_share_one_port(make_server: ServerFactory) -> None:
    """What ``dramatiq -p 2`` does: each worker process binds the same port."""
    first = make_server()
    second = make_server(port=first.port)
    assert second.port == first.port

    assert request(first.port, "GET", "/healthz")[0] == 200
    first.stop()
    # The second one serves on its own now.
    for _ in range(5):
        assert request(second.port, "GET", "/healthz") == (200, {"status": "ok"})


# -- push authentication ------------------------------------------------------------------


@pytest.fixture
def issuer() -> Issuer:
    return Issuer(AUDIENCE, ACCOUNT)


@pytest.fixture
def certs_url(issuer: Issuer) -> Iterator[str]:
    with serving_certs(issuer) as url:
        yield url


@pytest.fixture
def verifier(certs_url: str) -> PushTokenVerifier:
    return PushTokenVerifier(AUDIENCE, ACCOUNT, certs_url=certs_url)


def refusal(verifier: PushTokenVerifier, header: str | None) -> int:
    with pytest.raises(PushAuthError) as caught:
        verifier.verify(header)
    return caught.value.status


def test_good_token_passes(verifier: PushTokenVerifier, issuer: Issuer) -> None:
    verifier.verify(f"Bearer {issuer.token()}")
    verifier.verify(f"bearer {issuer.token(iss='accounts.google.com')}")


def test_missing_or_malformed_token_is_unauthorized(verifier: PushTokenVerifier) -> None:
    assert refusal(verifier, None) == 401
    assert refusal(verifier, "") == 401
    assert refusal(verifier, "Basic dXNlcjpwYXNz") == 401
    assert refusal(verifier, "Bearer ") == 401
    assert refusal(verifier, "Bearer not-a-jwt") == 401
    assert refusal(verifier, "Bearer a.b.c") == 401


def test_token_that_is_not_ours_is_forbidden(verifier: PushTokenVerifier, issuer: Issuer) -> None:
    now = int(time.time())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = {
        "wrong audience": issuer.token(aud="https://elsewhere.example/push"),
        "wrong email": issuer.token(email="someone@project.iam.gserviceaccount.com"),
        "unverified email": issuer.token(email_verified=False),
        "wrong issuer": issuer.token(iss="https://evil.example"),
        "expired": issuer.token(iat=now - 7200, exp=now - 3600),
        "from the future": issuer.token(iat=now + 3600, exp=now + 7200),
        "forged signature": issuer.token(key=stranger),
    }
    statuses = {why: refusal(verifier, f"Bearer {token}") for why, token in tokens.items()}
    assert statuses == dict.fromkeys(tokens, 403)


def test_certificates_are_fetched_once_while_fresh(
    verifier: PushTokenVerifier, issuer: Issuer
) -> None:
    for _ in range(3):
        verifier.verify(f"Bearer {issuer.token()}")
    assert issuer.fetches == 1


def test_audience_alone_accepts_any_account(certs_url: str, issuer: Issuer) -> None:
    verifier = PushTokenVerifier(AUDIENCE, None, certs_url=certs_url)
    verifier.verify(f"Bearer {issuer.token(email='other@project.iam.gserviceaccount.com')}")
    assert refusal(verifier, f"Bearer {issuer.token(aud='https://elsewhere.example')}") == 403


def test_verifier_needs_an_audience() -> None:
    with pytest.raises(ValueError, match="audience"):
        PushTokenVerifier("", ACCOUNT)


def test_unreachable_certificates_ask_for_a_retry(issuer: Issuer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    verifier = PushTokenVerifier(
        AUDIENCE, ACCOUNT, certs_url=f"http://127.0.0.1:{closed_port}/certs"
    )
    assert refusal(verifier, f"Bearer {issuer.token()}") == 503


def test_push_endpoint_checks_the_token_first(
    make_server: ServerFactory,
    push_broker: PubSubBroker,
    verifier: PushTokenVerifier,
    issuer: Issuer,
) -> None:
    port = make_server(inbox=push_broker.push_inbox, verifier=verifier).port

    def push(token: str | None, body: bytes = b"{}") -> Reply:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return request(port, "POST", "/pubsub/push", body, headers)

    assert push(None) == (401, {"error": "unauthorized"})
    assert push("garbage") == (401, {"error": "unauthorized"})
    assert push(issuer.token(aud="https://elsewhere.example")) == (403, {"error": "forbidden"})
    assert push(issuer.token(email="x@y.z")) == (403, {"error": "forbidden"})
    # Refused before the body is even looked at: an oversized one is not read.
    too_big = {"Content-Length": str(MAX_BODY_BYTES + 1)}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest("POST", "/pubsub/push")
        for name, value in too_big.items():
            connection.putheader(name, value)
        connection.endheaders(b"{}")
        assert connection.getresponse().status == 401
    finally:
        connection.close()
    # A good token gets through to the envelope check, then to the inbox.
    assert push(issuer.token()) == (400, {"error": "not a pub/sub push envelope"})
    assert push(issuer.token(), push_envelope()) == (400, {"error": "rejected"})
