"""The council's options on the command line: ``submit``'s new flags and ``retry``.

The commands run in-process through ``cli.main`` against a small HTTP server on
127.0.0.1 that records each request and answers with canned JSON, so the tests see the
exact method, path and body the API would get. The end-to-end path against the real API
is in ``tests/app/test_cli_client.py``.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from consensus_engine import run_commands
from consensus_engine.cli import build_parser, main

RUN_ID = "6f1c2a1e-2b8e-4f7a-9d55-0c3e1f2a4b6d"
ACCEPTED = {
    "run_id": RUN_ID,
    "status": "queued",
    "run_type": "initial",
    "priority": "normal",
    "enqueued": True,
    "message": "the run is queued",
}


@dataclass
class Recorded:
    method: str
    path: str
    """Without the query string, which is in ``query``."""
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeApi:
    """What the server answers (by method and path, with ``headers`` added to an answer)
    and what it was asked."""

    url: str
    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    headers: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            url = urllib.parse.urlsplit(self.path)
            asked = (self.command, url.path)
            api.requests.append(
                Recorded(
                    self.command,
                    url.path,
                    json.loads(raw) if raw else None,
                    dict(self.headers.items()),
                    dict(urllib.parse.parse_qsl(url.query)),
                )
            )
            status, body = api.answers.get(asked, (404, {"code": "NOT_FOUND"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in api.headers.get(asked, {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _cli(api: FakeApi, *args: str) -> int:
    return main(["--api-url", api.url, "--api-key", "ce_test", *args])


def _submitted(api: FakeApi) -> Any:
    [request] = [r for r in api.requests if (r.method, r.path) == ("POST", "/v1/runs")]
    return request.body


# -- parsing ---------------------------------------------------------------------------------


def test_submit_without_council_flags_leaves_every_one_unset() -> None:
    args = build_parser().parse_args(["submit", "An idea."])
    assert (args.persona_models, args.review_rounds, args.chair, args.chair_model) == (
        None,
        None,
        None,
        None,
    )


def test_submit_parses_every_council_flag() -> None:
    args = build_parser().parse_args(
        [
            "submit",
            "An idea.",
            "--persona-model",
            "critic=llama-3.1-8b",
            "--persona-model",
            " architect = org/model:free ",
            "--rounds",
            "2",
            "--chair",
            "--chair-model",
            "claude-sonnet",
        ]
    )
    assert args.persona_models == {"critic": "llama-3.1-8b", "architect": "org/model:free"}
    assert args.review_rounds == 2
    assert args.chair is True
    assert args.chair_model == "claude-sonnet"
    assert build_parser().parse_args(["submit", "x", "--no-chair"]).chair is False


def test_a_model_name_may_itself_hold_an_equals_sign() -> None:
    args = build_parser().parse_args(["submit", "x", "--persona-model", "critic=a=b"])
    assert args.persona_models == {"critic": "a=b"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rounds", "3"], "invalid choice: 3"),
        (["--rounds", "two"], "invalid int value"),
        (["--persona-model", "critic"], "expected ID=MODEL, got 'critic'"),
        (["--persona-model", "=llama"], "expected ID=MODEL"),
        (["--persona-model", "critic="], "expected ID=MODEL"),
        (
            ["--persona-model", "critic=a", "--persona-model", "critic=b"],
            "persona 'critic' is named twice",
        ),
    ],
)
def test_bad_council_flags_are_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["submit", "An idea.", *flags])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_retry_takes_a_run_id_and_the_usual_output_flags() -> None:
    args = build_parser().parse_args(["retry", RUN_ID, "--wait", "--json"])
    assert (args.run_id, args.wait, args.json) == (RUN_ID, True, True)
    assert args.handler is run_commands.retry


# -- what is sent ----------------------------------------------------------------------------


def test_submit_sends_only_the_council_options_given(fake_api: FakeApi) -> None:
    fake_api.answers[("POST", "/v1/runs")] = (202, ACCEPTED)
    assert _cli(fake_api, "submit", "An idea.") == 0
    assert _submitted(fake_api) == {"idea": "An idea."}

    fake_api.requests.clear()
    assert _cli(fake_api, "submit", "An idea.", "--rounds", "1", "--no-chair") == 0
    assert _submitted(fake_api) == {"idea": "An idea.", "review_rounds": 1, "chair": False}


def test_submit_sends_every_council_option(fake_api: FakeApi) -> None:
    fake_api.answers[("POST", "/v1/runs")] = (202, ACCEPTED)
    code = _cli(
        fake_api,
        "submit",
        "An idea.",
        "--priority",
        "high",
        "--persona-model",
        "critic=llama-3.1-8b",
        "--persona-model",
        "optimist=gpt-4.1",
        "--rounds",
        "2",
        "--chair-model",
        "claude-sonnet",
    )
    assert code == 0
    assert _submitted(fake_api) == {
        "idea": "An idea.",
        "priority": "high",
        "persona_models": {"critic": "llama-3.1-8b", "optimist": "gpt-4.1"},
        "review_rounds": 2,
        "chair_model": "claude-sonnet",
    }


def test_an_unknown_model_is_the_apis_one_line_usage_error(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    refusal = {
        "code": "UNKNOWN_MODEL",
        "message": "persona_models.critic is not a model this deployment allows: gpt-4.1-mini",
        "request_id": "abc123",
    }
    fake_api.answers[("POST", "/v1/runs")] = (422, refusal)
    assert _cli(fake_api, "submit", "x", "--persona-model", "critic=nope") == 2
    assert capsys.readouterr().err == (
        "consensus-engine: persona_models.critic is not a model this deployment allows: "
        "gpt-4.1-mini (UNKNOWN_MODEL, request abc123)\n"
    )


def test_retry_posts_to_the_runs_retry_and_says_what_runs_again(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_api.answers[("POST", f"/v1/runs/{RUN_ID}/retry")] = (202, ACCEPTED | {"steps": ["chair"]})
    assert _cli(fake_api, "retry", RUN_ID) == 0
    assert [(r.method, r.path, r.body) for r in fake_api.requests] == [
        ("POST", f"/v1/runs/{RUN_ID}/retry", None)
    ]
    assert capsys.readouterr().out == f"Run {RUN_ID} queued (normal priority).\n  re-runs: chair\n"


def test_retry_of_a_run_that_cannot_be_retried_is_the_apis_conflict(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    conflict = {
        "code": "CONFLICT",
        "message": "only a failed run, or a completed one whose chair failed, can be retried",
        "request_id": "abc123",
    }
    fake_api.answers[("POST", f"/v1/runs/{RUN_ID}/retry")] = (409, conflict)
    assert _cli(fake_api, "retry", RUN_ID) == 1
    assert "(CONFLICT, request abc123)" in capsys.readouterr().err


def _finished_run(chair_status: str) -> dict[str, Any]:
    return {
        "run_id": RUN_ID,
        "status": "completed",
        "run_type": "initial",
        "priority": "normal",
        "idea": "An idea.",
        "decision": None,
        "reviews": [],
        "steps": [],
        "chair": {
            "status": chair_status,
            "model": "claude-sonnet",
            "provider": "openrouter",
            "fallback": False,
            "model_written": True,
            "report": None,
            "error": "provider timed out." if chair_status == "failed" else None,
        },
    }


@pytest.mark.parametrize(
    ("command", "chair_status", "code"),
    [
        ("retry", "failed", 4),  # what it re-ran failed again
        ("retry", "completed", 0),
        ("submit", "failed", 0),  # the decision stands; the failed chair is a note
    ],
)
def test_waiting_reports_a_failed_chair(
    fake_api: FakeApi,
    capsys: pytest.CaptureFixture[str],
    command: str,
    chair_status: str,
    code: int,
) -> None:
    """The event stream is absent (404), so following polls the run, already finished."""
    fake_api.answers[("POST", f"/v1/runs/{RUN_ID}/retry")] = (202, ACCEPTED | {"steps": ["chair"]})
    fake_api.answers[("POST", "/v1/runs")] = (202, ACCEPTED)
    fake_api.answers[("GET", f"/v1/runs/{RUN_ID}")] = (200, _finished_run(chair_status))
    target = RUN_ID if command == "retry" else "An idea."
    assert _cli(fake_api, command, target, "--wait") == code
    out, err = capsys.readouterr()
    assert f"Chair (model-written, does not change the decision): {chair_status}" in out
    if chair_status == "failed":
        assert err == (
            f"consensus-engine: run {RUN_ID} completed, but its chair failed: provider timed "
            f"out; try again: consensus-engine retry {RUN_ID}\n"
        )
    else:
        assert err == ""
