"""The command line as a CI gate: ``--fail-on`` and its exit statuses, the default
``Idempotency-Key``, ``cancel``, every ``runs list`` filter, ``--version``, ``mcp``, and
``--json`` failures as JSON on stderr.

The commands run in-process through ``cli.main`` against the recording HTTP server of
``test_cli_council`` (canned answers, every request kept with its headers and query). The
event stream is absent there (404), so ``--wait`` polls the run, answered as finished or as
still running. The same gate against a real stack is in ``tests/app/test_cli_client.py``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from fastapi.dependencies.utils import get_dependant
from test_cli_council import ACCEPTED, RUN_ID, FakeApi, fake_api

from consensus_engine import run_commands
from consensus_engine.cli import (
    DECISIONS,
    RUN_SORTS,
    RUN_STATUSES,
    RUN_TYPES,
    SORT_DIRECTIONS,
    build_parser,
    main,
)
from consensus_engine.client import ConsensusClient, ExitCode, default_idempotency_key
from consensus_engine.db.reads import Direction, RunSort
from consensus_engine.domain.runs import RunStatus, RunType
from consensus_engine.domain.schemas import DecisionLabel

__all__ = ["fake_api"]  # the fixture, used by name

RUN_PATH = f"/v1/runs/{RUN_ID}"


def _cli(api: FakeApi, *args: str) -> int:
    return main(["--api-url", api.url, "--api-key", "ce_test", *args])


def _review(name: str, *blocking: str) -> dict[str, Any]:
    return {
        "persona_id": name.lower(),
        "persona_name": name,
        "confidence_score": 0.5,
        "blocking_issues": [{"text": text} for text in blocking],
        "concerns": [],
    }


def _decided(label: str, score: float = 0.66) -> dict[str, Any]:
    return {
        "run_id": RUN_ID,
        "status": "completed",
        "run_type": "initial",
        "priority": "normal",
        "idea": "An idea.",
        "steps": [],
        "reviews": [_review("Critic", "No rollback plan."), _review("Optimist")],
        "decision": {
            "decision": label,
            "overall_weighted_confidence": score,
            "approve_threshold": 0.8,
            "revise_threshold": 0.6,
        },
    }


def _ended(status: str, code: str, message: str) -> dict[str, Any]:
    run = _decided("revise") | {"status": status, "decision": None}
    return run | {"error": {"code": code, "message": message}}


def _serve_run(api: FakeApi, detail: dict[str, Any]) -> None:
    api.answers[("POST", "/v1/runs")] = (202, ACCEPTED)
    api.answers[("GET", RUN_PATH)] = (200, detail)


def _json_error(err: str) -> dict[str, Any]:
    """stderr under ``--json``: exactly one JSON object."""
    [line] = err.splitlines()
    value: dict[str, Any] = json.loads(line)
    return value


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("reject,revise", ("reject", "revise")),
        (" Revise , reject,revise,", ("revise", "reject")),
        ("approve", ("approve",)),
    ],
)
def test_fail_on_reads_a_comma_separated_list_of_decisions(
    text: str, parsed: tuple[str, ...]
) -> None:
    args = build_parser().parse_args(["submit", "x", "--fail-on", text])
    assert args.fail_on == parsed
    assert args.wait is False  # the handler waits anyway: see test_fail_on_implies_wait


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fail-on", "nope"], "expected decisions out of approve, revise, reject"),
        (["--fail-on", ","], "expected decisions"),
        (["--fail-on", "revise,maybe"], "got 'revise,maybe'"),
        (["--timeout", "0"], "expected a positive number of seconds"),
        (["--timeout", "-5"], "expected a positive number of seconds"),
        (["--timeout", "inf"], "expected a positive number of seconds"),
        (["--timeout", "soon"], "expected seconds, got 'soon'"),
        (["--idempotency-key", "a\nb"], "printable ASCII"),
        (["--idempotency-key", " padded"], "without leading or trailing spaces"),
        (["--idempotency-key", "k" * 201], "expected 1-200 printable ASCII"),
        (["--idempotency-key", "k", "--no-idempotency-key"], "not allowed with argument"),
    ],
)
def test_bad_gate_flags_are_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["submit", "An idea.", *flags])
    assert exited.value.code == ExitCode.USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", [["revise", RUN_ID, "--notes", "n"], ["retry", RUN_ID]])
def test_revise_and_retry_take_the_gate_too(command: list[str]) -> None:
    args = build_parser().parse_args([*command, "--fail-on", "reject", "--timeout", "60"])
    assert (args.fail_on, args.timeout) == (("reject",), 60.0)


def test_an_idempotency_key_of_200_characters_is_taken() -> None:
    key = "gh-" + "9" * 197
    assert (
        build_parser().parse_args(["submit", "x", "--idempotency-key", key]).idempotency_key == key
    )


def test_the_listed_choices_are_the_apis() -> None:
    assert tuple(RunStatus) == RUN_STATUSES
    assert tuple(RunType) == RUN_TYPES
    assert tuple(DecisionLabel) == DECISIONS
    assert tuple(RunSort) == RUN_SORTS
    assert tuple(Direction) == SORT_DIRECTIONS


NOT_OFFERED = {"offset", "start_date", "end_date"}
"""Query parameters of ``GET /v1/runs`` kept for the earlier system's clients only."""


def test_runs_list_offers_every_filter_of_the_api() -> None:
    """Each query parameter of ``GET /v1/runs`` has a flag (bar the earlier system's
    names), and each flag is one of them, by the name the API reads."""
    from consensus_engine.api.routes.runs import list_runs

    dependant = get_dependant(path="/v1/runs", call=list_runs)
    answered = {param.alias for param in dependant.query_params}
    assert set(run_commands.LIST_FILTERS) == answered - NOT_OFFERED


def test_version_is_the_installed_packages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == (
        f"consensus-engine {importlib.metadata.version('consensus-engine')}\n"
    )


def test_mcp_parses_its_transport_and_address() -> None:
    args = build_parser().parse_args(["mcp"])
    assert (args.transport, args.host, args.port) == ("stdio", "127.0.0.1", 8765)
    assert args.handler is run_commands.mcp
    args = build_parser().parse_args(
        ["mcp", "--transport", "http", "--host", "0.0.0.0", "--port", "9000", "--api-url", "u"]
    )
    assert (args.transport, args.host, args.port, args.api_url) == ("http", "0.0.0.0", 9000, "u")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mcp", "--transport", "sse"])


def test_mcp_serves_with_the_clients_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command hands its arguments to ``consensus_engine.mcp.server.run``, which is
    replaced here so that nothing is served."""
    server = pytest.importorskip("consensus_engine.mcp.server")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(server, "run", lambda **kwargs: calls.append(kwargs))
    argv = ["--api-url", "http://api.test", "--api-key", "ce_k", "mcp", "--transport", "http"]
    assert main(argv) == 0
    assert calls == [
        {
            "transport": "http",
            "host": "127.0.0.1",
            "port": 8765,
            "api_url": "http://api.test",
            "api_key": "ce_k",
        }
    ]


# -- the gate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "code", "verdict"),
    [
        ("revise", ExitCode.BLOCKED, "Gate: failed (revise is in --fail-on: reject, revise)"),
        ("reject", ExitCode.BLOCKED, "Gate: failed (reject is in --fail-on: reject, revise)"),
        ("approve", ExitCode.OK, "Gate: passed (approve is not in --fail-on: reject, revise)"),
    ],
)
def test_the_gate_exits_on_the_decisions_listed(
    fake_api: FakeApi,
    capsys: pytest.CaptureFixture[str],
    decision: str,
    code: int,
    verdict: str,
) -> None:
    _serve_run(fake_api, _decided(decision))
    assert _cli(fake_api, "submit", "An idea.", "--wait", "--fail-on", "reject,revise") == code
    out, err = capsys.readouterr()
    summary = out.split("\n\n", 1)[1]  # after the progress
    assert summary == (
        f"Decision: {decision.upper()}  score 0.660 (approve at 0.80, revise at 0.60)\n"
        f"Run: {RUN_ID}  {fake_api.url}/runs/{RUN_ID}\n"
        "Blocking (1): Critic: No rollback plan.\n"
        f"{verdict}\n"
    )
    if code == ExitCode.OK:
        assert err == ""
    else:
        assert err == (
            f"consensus-engine: gate failed: run {RUN_ID} decided {decision}, which --fail-on "
            "lists (reject, revise)\n"
        )


def test_fail_on_implies_wait(fake_api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    _serve_run(fake_api, _decided("reject"))
    assert _cli(fake_api, "submit", "An idea.", "--fail-on", "reject") == ExitCode.BLOCKED
    assert ("GET", RUN_PATH) in [(r.method, r.path) for r in fake_api.requests]
    assert "Gate: failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("status", "code"), [("failed", "RUN_FAILED"), ("cancelled", "RUN_CANCELLED")]
)
def test_a_run_without_a_decision_is_its_own_exit_status(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str], status: str, code: str
) -> None:
    _serve_run(fake_api, _ended(status, "LLM_UNAVAILABLE", "the model did not answer"))
    assert _cli(fake_api, "submit", "An idea.", "--fail-on", "reject") == ExitCode.UNFINISHED
    out, err = capsys.readouterr()
    assert f"Run {status}: the model did not answer (LLM_UNAVAILABLE)\n" in out
    assert "Gate: failed (the run ended without a decision)" in out
    hint = f"; try again: consensus-engine retry {RUN_ID}" if status == "failed" else ""
    assert err == (
        f"consensus-engine: run {RUN_ID} did not complete ({status}): the model did not "
        f"answer{hint}\n"
    )

    assert _cli(fake_api, "submit", "An idea.", "--wait", "--json") == ExitCode.UNFINISHED
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == status
    failure = _json_error(err)
    assert failure["exit_code"] == ExitCode.UNFINISHED
    assert failure["error"]["code"] == code
    assert failure["error"]["details"]["run_error"]["code"] == "LLM_UNAVAILABLE"


def test_waiting_gives_up_after_the_timeout(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    running = _decided("revise") | {"status": "running", "decision": None}
    _serve_run(fake_api, running)
    args = ("submit", "An idea.", "--fail-on", "reject", "--timeout", "0.3", "--json")
    assert _cli(fake_api, *args) == ExitCode.UNFINISHED
    out, err = capsys.readouterr()
    assert out == ""
    failure = _json_error(err)["error"]
    assert failure["code"] == "WAIT_TIMEOUT"
    assert failure["message"].startswith(f"run {RUN_ID} did not end within 0.3 s; it goes on")
    assert failure["details"] == {"run_id": RUN_ID, "timeout_seconds": 0.3}


def test_the_gate_with_json_prints_the_run_and_a_json_verdict(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve_run(fake_api, _decided("revise", 0.61))
    code = _cli(fake_api, "submit", "An idea.", "--fail-on", "revise", "--json")
    assert code == ExitCode.BLOCKED
    out, err = capsys.readouterr()
    assert json.loads(out) == _decided("revise", 0.61)  # the API's JSON, unchanged
    assert _json_error(err) == {
        "error": {
            "code": "DECISION_BLOCKED",
            "message": f"gate failed: run {RUN_ID} decided revise, which --fail-on lists (revise)",
            "http_status": None,
            "request_id": None,
            "details": {
                "run_id": RUN_ID,
                "decision": "revise",
                "score": 0.61,
                "fail_on": ["revise"],
            },
        },
        "exit_code": 3,
    }


# -- Idempotency-Key -------------------------------------------------------------------------


def _keys_sent(api: FakeApi) -> list[str | None]:
    return [r.headers.get("Idempotency-Key") for r in api.requests if r.method == "POST"]


def test_submit_sends_a_key_derived_from_the_request(fake_api: FakeApi) -> None:
    fake_api.answers[("POST", "/v1/runs")] = (202, ACCEPTED)
    assert _cli(fake_api, "submit", "An idea.") == 0
    assert _cli(fake_api, "submit", "An idea.") == 0  # a retried step: the same key
    assert _cli(fake_api, "submit", "An idea.", "--priority", "high") == 0
    digest = hashlib.sha256(b'{"idea":"An idea."}').hexdigest()
    first, again, other = _keys_sent(fake_api)
    assert first == again == f"cli-{digest}"
    assert other == default_idempotency_key({"idea": "An idea.", "priority": "high"})
    assert other != first


def test_submit_sends_the_key_given_or_none(fake_api: FakeApi) -> None:
    fake_api.answers[("POST", "/v1/runs")] = (202, ACCEPTED)
    assert _cli(fake_api, "submit", "An idea.", "--idempotency-key", "gh-42-1") == 0
    assert _cli(fake_api, "submit", "An idea.", "--no-idempotency-key") == 0
    assert _keys_sent(fake_api) == ["gh-42-1", None]
    assert [r.body for r in fake_api.requests] == [{"idea": "An idea."}] * 2


def test_a_replayed_submit_says_nothing_new_runs(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_api.answers[("POST", "/v1/runs")] = (200, ACCEPTED | {"status": "completed"})
    fake_api.headers[("POST", "/v1/runs")] = {"Idempotent-Replayed": "true"}
    assert _cli(fake_api, "submit", "An idea.") == 0
    assert capsys.readouterr().out == (
        f"Run {RUN_ID} completed (normal priority).\n"
        "  an earlier submit of the same request made this run (Idempotency-Key); "
        "--no-idempotency-key submits a new one\n"
    )


# -- cancel and runs list --------------------------------------------------------------------


def test_cancel_posts_to_the_runs_cancel(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = {"run_id": RUN_ID, "status": "cancelled", "completed_at": None, "error_code": None}
    fake_api.answers[("POST", f"{RUN_PATH}/cancel")] = (200, answer)
    assert _cli(fake_api, "cancel", RUN_ID) == 0
    assert capsys.readouterr().out == f"Run {RUN_ID} cancelled.\n"
    assert _cli(fake_api, "cancel", RUN_ID, "--json") == 0
    assert json.loads(capsys.readouterr().out) == answer
    assert [(r.method, r.path, r.body) for r in fake_api.requests] == [
        ("POST", f"{RUN_PATH}/cancel", None)
    ] * 2


def test_runs_list_sends_every_filter_given(fake_api: FakeApi) -> None:
    fake_api.answers[("GET", "/v1/runs")] = (200, {"runs": [], "limit": 5, "next_cursor": None})
    parent = "0b0e6c3a-54a4-4c69-8c42-6b9d3a4b1c2d"
    code = _cli(
        fake_api,
        "runs",
        "list",
        "--status",
        "completed",
        "--run-type",
        "revision",
        "--parent",
        parent,
        "--decision",
        "reject",
        "--min-confidence",
        "0.5",
        "--created-after",
        "2025-01-01T00:00:00Z",
        "--created-before",
        "2025-02-01T00:00:00+01:00",
        "--search",
        "bike club",
        "--sort",
        "score",
        "--direction",
        "asc",
        "--limit",
        "5",
        "--cursor",
        "abc",
    )
    assert code == 0
    assert fake_api.requests[-1].query == {
        "status": "completed",
        "run_type": "revision",
        "parent_run_id": parent,
        "decision": "reject",
        "min_confidence": "0.5",
        "created_after": "2025-01-01T00:00:00Z",
        "created_before": "2025-02-01T00:00:00+01:00",
        "q": "bike club",
        "sort": "score",
        "direction": "asc",
        "limit": "5",
        "cursor": "abc",
    }
    assert _cli(fake_api, "runs", "list") == 0
    assert fake_api.requests[-1].query == {}  # nothing given, nothing sent


# -- failures under --json -------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(404, ExitCode.ERROR), (422, ExitCode.USAGE)])
def test_api_errors_under_json_are_the_apis_code_and_message(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str], status: int, code: int
) -> None:
    envelope = {"code": "SOME_CODE", "message": "what went wrong", "request_id": "r-1"}
    fake_api.answers[("GET", RUN_PATH)] = (status, envelope | {"details": [{"loc": ["x"]}]})
    assert _cli(fake_api, "runs", "show", RUN_ID, "--json") == code
    out, err = capsys.readouterr()
    assert out == ""
    assert _json_error(err) == {
        "error": {
            "code": "SOME_CODE",
            "message": "what went wrong",
            "http_status": status,
            "request_id": "r-1",
            "details": [{"loc": ["x"]}],
        },
        "exit_code": code,
    }


def test_an_unreachable_api_under_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--api-url", "http://127.0.0.1:1", "runs", "list", "--json"])
    assert code == ExitCode.ERROR
    failure = _json_error(capsys.readouterr().err)["error"]
    assert failure["code"] == "API_UNREACHABLE"
    assert failure["message"] == "cannot reach the API at http://127.0.0.1:1: connection refused"


def test_a_bad_argument_under_json_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["runs", "list", "--json", "--status", "lost"])
    assert exited.value.code == ExitCode.USAGE
    out, err = capsys.readouterr()
    assert out == ""
    failure = _json_error(err)
    assert failure["exit_code"] == ExitCode.USAGE
    assert failure["error"]["code"] == "USAGE_ERROR"
    assert failure["error"]["message"].startswith(
        "consensus-engine runs list: argument --status: invalid choice: 'lost'"
    )


def test_without_json_a_bad_argument_is_argparses_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["runs", "list", "--status", "lost"])
    assert capsys.readouterr().err.startswith("usage: consensus-engine runs list")


def test_an_unexpected_failure_under_json_has_no_traceback(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ConsensusClient, run_id: str) -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ConsensusClient, "get_run", broken)
    assert _cli(fake_api, "runs", "show", RUN_ID, "--json") == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert _json_error(err)["error"] | {"details": None} == {
        "code": "INTERNAL_ERROR",
        "message": "unexpected RuntimeError: a bug",
        "http_status": None,
        "request_id": None,
        "details": None,
    }
    with pytest.raises(RuntimeError):  # without --json a bug keeps its traceback
        _cli(fake_api, "runs", "show", RUN_ID)


# -- the README's section --------------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    heading = "\n### CI gate\n"
    assert text.count(heading) == 1, "the CI gate section is missing or repeated"
    start = text.index(heading) + 1
    return text[start : text.index("\n### ", start + 1)]


def test_the_readmes_ci_job_runs_the_gate_with_a_key_per_run_attempt() -> None:
    [job] = re.findall(r"^```yaml\n(.*?)^```$", _readme_section(), flags=re.M | re.S)
    step = job[job.index("run: >-") :].split("\n", 1)[1]
    words = shlex.split(" ".join(line.strip() for line in step.splitlines()))
    assert words[:2] == ["consensus-engine", "submit"]
    args = build_parser().parse_args(words[1:])
    assert args.handler is run_commands.submit
    assert args.fail_on == ("reject", "revise")
    assert args.idempotency_key == (
        "gh-${{ github.run_id }}-${{ github.run_attempt }}-design-review"
    )


def test_the_readmes_exit_status_table_is_the_commands() -> None:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", _readme_section(), flags=re.M)
    assert [int(code) for code, _ in rows] == [int(code) for code in ExitCode]
    summary = re.search(r"^```text\n(.*?)^```$", _readme_section(), flags=re.M | re.S)
    assert summary and summary.group(1).splitlines()[-1].startswith("Gate: failed (revise is")
