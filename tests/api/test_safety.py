"""Safety of the HTTP API, over real HTTP: keys, rate limit, body cap, one error envelope,
request ids, no internal text in any answer, and metrics without raw ids.

Besides the real routes, a few throwaway routes are added to an app made by the real
``create_app`` (its middleware, handlers and dependencies) to provoke what the real
routes cannot on demand: an unexpected exception, a body model with a distinctive field.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field

from consensus_engine.api.app import create_app
from consensus_engine.api.auth import digest, new_key
from consensus_engine.api.state import PrincipalDep
from consensus_engine.devtools.loopback import (
    LOOPBACK,
    ApiClient,
    BackgroundServer,
    Response,
    http_request,
)
from consensus_engine.devtools.process import free_port
from consensus_engine.settings import Settings

from .conftest import ApiFactory, ApiHarness

OPEN_PATHS = {"/health", "/ready"}
ENVELOPE_KEYS = {"code", "message", "details", "request_id"}
LEAK = "could not connect to postgresql://svc:hunter2@db.internal:5432/consensus (timeout)"
DISTINCTIVE = "Zq7-DISTINCTIVE-input-8xW"
BODY_CAP = 2_000


class ProbeBody(BaseModel):
    idea: str = Field(min_length=3, max_length=40)
    priority: Literal["normal", "high"] = "normal"
    count: int = 1
    padding: str = ""


def probe_app(settings: Settings) -> FastAPI:
    """The real app plus routes that provoke what the real ones cannot on demand."""
    app = create_app(settings)

    def whoami(item_id: str, principal: PrincipalDep) -> dict[str, str]:
        return {"tenant": principal.tenant, "item": item_id}

    def accept(body: ProbeBody, principal: PrincipalDep) -> dict[str, int]:
        return {"bytes": len(body.padding)}

    def boom() -> None:
        raise RuntimeError(LEAK)

    async def boom_async() -> None:
        raise ConnectionError(LEAK)

    app.add_api_route("/v1/probe/{item_id}", whoami, methods=["GET"])
    app.add_api_route("/v1/probe", accept, methods=["POST"])
    app.add_api_route("/v1/boom", boom, methods=["GET"])
    app.add_api_route("/v1/boom-async", boom_async, methods=["GET"])
    return app


def derive(settings: Settings, **changes: Any) -> Settings:
    """The harness's settings with a few changed, validated again like at start-up."""
    return Settings.model_validate({**settings.model_dump(), **changes})


ServeProbe = Callable[..., ApiClient]


@pytest.fixture
def serve_probe(api: ApiHarness) -> Iterator[ServeProbe]:
    """``serve_probe(**setting_changes)``: the probe app over the harness's stack, as acme;
    without metrics unless ``api_metrics_port`` is given (the harness's API holds its port)."""
    with contextlib.ExitStack() as servers:

        def serve(**changes: Any) -> ApiClient:
            settings = derive(api.settings, **{"api_metrics_port": 0, **changes})
            return ApiClient(servers.enter_context(BackgroundServer(probe_app(settings))).url)

        yield serve


@pytest.fixture
def probe_metrics_port() -> int:
    return free_port()


@pytest.fixture
def probe(api: ApiHarness, serve_probe: ServeProbe, probe_metrics_port: int) -> ApiClient:
    """The probe app with a small body cap, called with acme's key unless told otherwise,
    its metrics on ``probe_metrics_port``."""
    client = serve_probe(api_max_body_bytes=BODY_CAP, api_metrics_port=probe_metrics_port)
    client.key = api.keys["acme"]
    return client


def send_raw(
    base_url: str,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None,
    headers: dict[str, str],
) -> Response:
    """One request over ``http.client``: exact control of Content-Length and chunking."""
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        chunked = headers.get("Transfer-Encoding") == "chunked"
        connection.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        answer = connection.getresponse()
        received = {name.lower(): value for name, value in answer.getheaders()}
        return Response(answer.status, received, answer.read())
    finally:
        connection.close()


def envelope(response: Response, status: int, code: str) -> dict[str, Any]:
    """The error body, after checking it is exactly the envelope and carries the request id."""
    assert response.status == status, response.body
    body = response.json()
    assert isinstance(body, dict) and set(body) == ENVELOPE_KEYS, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert body["request_id"] == response.headers.get("x-request-id"), (body, response.headers)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", body["request_id"])
    return body


def assert_unauthorized(response: Response) -> None:
    envelope(response, 401, "UNAUTHORIZED")
    assert response.headers.get("www-authenticate") == "Bearer"


def no_internals(response: Response) -> None:
    text = response.body.decode()
    for fragment in (
        "postgresql://",
        "hunter2",
        "db.internal",
        "Traceback",
        "RuntimeError",
        "ConnectionError",
        "could not connect",
        ".py",
        'File "',
    ):
        assert fragment not in text, (fragment, text)


def metric_lines(metrics_url: str, name: str) -> list[str]:
    text = http_request(metrics_url).body.decode()
    return [line for line in text.splitlines() if line.startswith(name + "{")]


# --- keys ---------------------------------------------------------------------------------


def _bad_credentials(harness: ApiHarness) -> dict[str, dict[str, str]]:
    return {
        "missing": {},
        "wrong key": {"Authorization": f"Bearer {new_key()}"},
        "basic": {"Authorization": "Basic YWNtZTpodW50ZXIy"},
        "basic with a real key": {"Authorization": f"Basic {harness.keys['acme']}"},
        "empty bearer": {"Authorization": "Bearer "},
        "bare scheme": {"Authorization": "Bearer"},
    }


def test_every_route_but_health_and_ready_requires_a_valid_key(
    make_api: ApiFactory,
) -> None:
    api = make_api(api={"API_DOCS_ENABLED": True})  # the schema lists the routes to try
    schema = api.anonymous.get("/openapi.json").json()
    assert {"/v1/runs", "/v1/full-review"} <= set(schema["paths"]), sorted(schema["paths"])
    guarded = [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path not in OPEN_PATHS
        for method in operations
    ]
    assert len(guarded) >= 11, guarded  # the endpoints of issue 5, at least
    some_id = str(uuid.uuid4())
    for method, template in guarded:
        path = re.sub(r"\{[^}]+\}", some_id, template)
        for name, headers in _bad_credentials(api).items():
            answer = send_raw(
                api.base_url,
                method,
                path,
                b"{}" if method in {"POST", "PUT", "PATCH"} else None,
                {"Content-Type": "application/json", **headers},
            )
            assert answer.status == 401, (method, template, name, answer.body)
            assert_unauthorized(answer)
    for path in sorted(OPEN_PATHS):
        assert api.anonymous.get(path).status == 200, path
    assert api.anonymous.get("/metrics").status == 404  # on a port of its own

    assert api.acme.get("/v1/runs").status == 200
    submitted = api.acme.post("/v1/full-review", {"idea": "Rent out garden sheds to hobbyists."})
    assert submitted.status == 202, submitted.body


def test_keys_from_a_mounted_file_and_open_development_access(
    api: ApiHarness, serve_probe: ServeProbe, tmp_path: Path
) -> None:
    initech = new_key()
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(
        f"# tenant:sha256hex\n\n   \ninitech:{digest(initech)}\n# the end\n", encoding="utf-8"
    )
    client = serve_probe(api_keys_file=keys_file)

    assert client.get("/v1/probe/1", key=initech).json() == {"tenant": "initech", "item": "1"}
    assert client.get("/v1/probe/2", key=api.keys["globex"]).json()["tenant"] == "globex"
    assert_unauthorized(client.get("/v1/probe/3"))

    # open development access: no key is tenant "default", a wrong key is still refused
    client = serve_probe(env="development", api_auth_disabled=True)
    assert client.get("/v1/probe/1").json() == {"tenant": "default", "item": "1"}
    assert client.get("/v1/probe/2", key=api.keys["acme"]).json()["tenant"] == "acme"
    assert_unauthorized(client.get("/v1/probe/3", key=new_key()))
    assert_unauthorized(client.get("/v1/probe/4", headers={"Authorization": "Bearer "}))

    with pytest.raises(ValueError, match="API_AUTH_DISABLED must not be set with ENV=production"):
        derive(api.settings, env="production", api_auth_disabled=True)


# --- rate limit ---------------------------------------------------------------------------


def test_the_rate_limit_is_per_key_and_answers_429_with_retry_after(make_api: ApiFactory) -> None:
    harness = make_api(api={"API_RATE_LIMIT_PER_MINUTE": 60, "API_RATE_LIMIT_BURST": 3})
    assert [harness.acme.get("/v1/runs").status for _ in range(3)] == [200, 200, 200]
    # one token a second refills: ask until it runs out (the next request, unless slow)
    for _ in range(10):
        limited = harness.acme.get("/v1/runs")
        if limited.status != 200:
            break
    body = envelope(limited, 429, "RATE_LIMITED")
    retry_after = limited.headers.get("retry-after", "")
    assert retry_after.isdigit() and int(retry_after) >= 1, retry_after
    assert body["details"] == {"retry_after_seconds": int(retry_after)}

    assert harness.globex.get("/v1/runs").status == 200  # another tenant's key is unaffected
    assert_unauthorized(harness.anonymous.get("/v1/runs"))  # no key: 401, not 429


# --- body cap -----------------------------------------------------------------------------


def test_a_body_over_the_cap_is_refused_before_parsing_and_one_at_the_cap_accepted(
    probe: ApiClient,
) -> None:
    oversized = b'{"idea": "' + b"x" * (BODY_CAP * 2) + b'"'  # not even valid JSON
    for path in ("/v1/probe", "/v1/full-review", "/v1/nowhere"):
        answer = send_raw(
            probe.base_url,
            "POST",
            path,
            oversized,
            {"Content-Type": "application/json", "Content-Length": str(len(oversized))},
        )
        body = envelope(answer, 413, "PAYLOAD_TOO_LARGE")
        assert body["details"] == {"max_bytes": BODY_CAP}

    # no Content-Length: counted as it arrives, refused once past the cap
    chunk = b"x" * 500
    for path, field in (("/v1/probe", b"padding"), ("/v1/full-review", b"idea")):
        chunks = [b'{"' + field + b'": "', *[chunk] * 6, b'"}']
        answer = send_raw(
            probe.base_url,
            "POST",
            path,
            iter(chunks),
            {
                "Content-Type": "application/json",
                "Transfer-Encoding": "chunked",
                "Authorization": f"Bearer {probe.key}",
            },
        )
        body = envelope(answer, 413, "PAYLOAD_TOO_LARGE")
        assert body["details"] == {"max_bytes": BODY_CAP}

    # exactly at the cap: accepted, with or without a declared length
    prefix = {"idea": "a fine idea", "padding": ""}
    room = BODY_CAP - len(json.dumps(prefix).encode())
    body = {"idea": "a fine idea", "padding": "p" * room}
    assert len(json.dumps(body).encode()) == BODY_CAP
    assert probe.post("/v1/probe", body).json() == {"bytes": room}

    chunked = json.dumps(body).encode()
    answer = send_raw(
        probe.base_url,
        "POST",
        "/v1/probe",
        iter([chunked[:700], chunked[700:1400], chunked[1400:]]),
        {
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            "Authorization": f"Bearer {probe.key}",
        },
    )
    assert (answer.status, answer.json()) == (200, {"bytes": room})

    idea = {"idea": "Rent out garden sheds. "}
    idea["idea"] += "s" * (BODY_CAP - len(json.dumps(idea).encode()))
    assert len(json.dumps(idea).encode()) == BODY_CAP
    submitted = probe.post("/v1/full-review", idea)
    assert submitted.status == 202, submitted.body


# --- one envelope, request ids, no internal text ------------------------------------------


def test_every_error_is_the_envelope_with_the_request_id(
    probe: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    envelope(probe.get("/v1/no-such-thing"), 404, "NOT_FOUND")
    wrong_method = probe.request("DELETE", "/health")
    envelope(wrong_method, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in wrong_method.headers.get("allow", "")

    for raw in (b'{"idea": "half a doc', b'{"idea": "\xff\xfe not utf-8"}'):
        for path in ("/v1/probe", "/v1/full-review"):
            malformed = probe.post(path, raw=raw)
            assert envelope(malformed, 422, "VALIDATION_ERROR")["details"], (path, raw)

    wrong_shape = probe.post("/v1/probe", {"idea": "ok idea", "count": "many"})
    details = envelope(wrong_shape, 422, "VALIDATION_ERROR")["details"]
    assert [item["loc"] for item in details] == [["body", "count"]]

    for path in ("/v1/boom", "/v1/boom-async"):
        caplog.clear()
        failed = probe.get(path)
        body = envelope(failed, 500, "INTERNAL_ERROR")
        assert body["details"] is None
        no_internals(failed)
        # what the client is not told is in the server's log, under the same request id
        logged = [r for r in caplog.records if body["request_id"] in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is not None
        assert LEAK in str(logged[0].exc_info[1])


def test_validation_errors_never_echo_the_rejected_input(api: ApiHarness, probe: ApiClient) -> None:
    probe_cases: list[Any] = [
        {"idea": "ok idea", "priority": DISTINCTIVE},
        {"idea": DISTINCTIVE * 3},
        {"idea": "ok idea", "count": DISTINCTIVE},
        {"idea": ["x", DISTINCTIVE]},
        [DISTINCTIVE],
    ]
    for bad in probe_cases:
        answer = probe.post("/v1/probe", bad)
        envelope(answer, 422, "VALIDATION_ERROR")
        assert DISTINCTIVE not in answer.body.decode(), answer.body
    malformed = probe.post("/v1/probe", raw=f'{{"idea": "{DISTINCTIVE}'.encode())
    envelope(malformed, 422, "VALIDATION_ERROR")
    assert DISTINCTIVE not in malformed.body.decode()

    real_cases: list[tuple[str, Any]] = [  # the real routes, with their own input checks
        ("/v1/full-review", {"idea": "Rent out sheds to hobbyists.", "priority": DISTINCTIVE}),
        ("/v1/full-review", {"idea": "An idea", "extra_context": "c" * 60_000 + DISTINCTIVE}),
        ("/v1/full-review", {"idea": "x" * 20_000 + DISTINCTIVE}),
        ("/v1/full-review", {"idea": "An idea", "review_temperature": DISTINCTIVE}),
        ("/v1/full-review", {"idea": "An idea", "expand_model": ["m", DISTINCTIVE]}),
        ("/v1/runs", {"idea": "An idea", "priority": {"p": DISTINCTIVE}}),
        ("/v1/expand-idea", {"idea": [DISTINCTIVE]}),
    ]
    for path, bad in real_cases:
        answer = api.acme.post(path, bad)
        envelope(answer, 422, "VALIDATION_ERROR")
        assert DISTINCTIVE not in answer.body.decode(), (path, answer.body)

    # an unknown field is named (to help fix a typo) but a huge name is not sent back whole
    huge_name = DISTINCTIVE * 400
    answer = api.acme.post("/v1/full-review", {"idea": "An idea", huge_name: 1})
    details = envelope(answer, 422, "VALIDATION_ERROR")["details"]
    assert details[0]["type"] == "extra_forbidden"
    assert len(answer.body) < 1_000 and huge_name not in answer.body.decode()


def test_an_unknown_persona_id_is_not_echoed(api: ApiHarness) -> None:
    made_up = "zq7_distinctive_persona"  # well-formed, so only the route's own check sees it
    for path in ("/v1/review-idea", "/v1/full-review"):
        answer = api.acme.post(path, {"idea": "An idea", "personas": [made_up]})
        envelope(answer, 422, "VALIDATION_ERROR")
        assert made_up not in answer.body.decode(), (path, answer.body)


def test_every_answer_has_a_request_id_echoed_when_valid_and_replaced_otherwise(
    probe: ApiClient, serve_probe: ServeProbe
) -> None:
    given = "client-req_42.a"
    for answer in (
        probe.get("/health", headers={"X-Request-ID": given}),
        probe.get("/v1/no-such-thing", headers={"X-Request-ID": given}),
        probe.get("/runs/any", headers={"X-Request-ID": given}),  # a web app page
    ):
        assert answer.headers.get("x-request-id") == given
    echoed = envelope(probe.get("/v1/nope", headers={"X-Request-ID": given}), 404, "NOT_FOUND")
    assert echoed["request_id"] == given

    for invalid in ("x" * 65, "has space", "semi;colon", "<script>", "caf\xe9"):
        answer = probe.get("/v1/no-such-thing", headers={"X-Request-ID": invalid})
        replaced = envelope(answer, 404, "NOT_FOUND")["request_id"]
        assert replaced != invalid and re.fullmatch(r"[0-9a-f]{32}", replaced)

    fresh = {probe.get("/health").headers.get("x-request-id") for _ in range(3)}
    assert len(fresh) == 3 and None not in fresh

    answers = {
        "health": probe.get("/health"),
        "401": probe.get("/v1/probe/1", key=""),
        "404": probe.get("/v1/missing"),
        "413": probe.post("/v1/probe", raw=b"{" + b" " * BODY_CAP + b"}"),
        "422": probe.post("/v1/probe", {}),
        "500": probe.get("/v1/boom"),
        "ok": probe.get("/v1/probe/1"),
    }
    limited = serve_probe(api_rate_limit_per_minute=1, api_rate_limit_burst=1)
    limited.key = probe.key
    limited.get("/v1/probe/1")
    answers["429"] = limited.get("/v1/probe/2")
    assert answers["429"].status == 429
    for name, answer in answers.items():
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers.get("x-request-id", "")), name


# --- metrics ------------------------------------------------------------------------------


def test_metrics_count_route_templates_never_raw_ids(
    probe: ApiClient, probe_metrics_port: int
) -> None:
    metrics_url = f"http://{LOOPBACK}:{probe_metrics_port}/metrics"
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for item in ids:
        assert probe.get(f"/v1/probe/{item}").status == 200
    probe.get(f"/v1/runs/{ids[0]}/nowhere")
    probe.post("/v1/probe", raw=b"{" + b" " * BODY_CAP + b"}")  # 413 before routing
    probe.request("DELETE", f"/v1/probe/{ids[1]}")  # 405
    for method in ("BREW", "PROPFIND"):
        send_raw(probe.base_url, method, f"/v1/probe/{ids[2]}", None, {})

    lines = metric_lines(metrics_url, "consensus_api_requests_total")
    text = "\n".join(lines)
    assert not any(item in text for item in ids), text
    assert 'method="GET",route="/v1/probe/{item_id}",status="200"} 3.0' in text
    assert 'method="GET",route="unmatched",status="404"} 1.0' in text
    assert re.search(r'method="POST",route="(unmatched|/v1/probe)",status="413"} 1.0', text)
    assert 'method="DELETE",route="/v1/probe/{item_id}",status="405"} 1.0' in text
    assert "BREW" not in text and "PROPFIND" not in text, text
    latency = metric_lines(metrics_url, "consensus_api_request_duration_seconds_count")
    assert any('route="/v1/probe/{item_id}"' in line for line in latency)
    assert not any(item in line for line in latency for item in ids)

    run_id = str(uuid.uuid4())  # a real route: its template, not the id
    assert probe.get(f"/v1/runs/{run_id}").status == 404
    text = "\n".join(metric_lines(metrics_url, "consensus_api_requests_total"))
    assert run_id not in text
    assert 'method="GET",route="/v1/runs/{run_id}",status="404"} 1.0' in text, text
