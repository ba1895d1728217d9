"""``consensus-engine submit|runs|revise|retry|cancel|diff|api-key``, as a user runs them, on a
real API; and ``submit --fail-on`` as a CI gate.

The API is served over HTTP by the ``api`` fixture (a real database, the Pub/Sub emulator and
the offline LLM); a real worker process finishes the runs. The command runs as a subprocess
with ``API_URL`` and ``API_KEY`` in its environment, exactly as a user would set them.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api import conftest as api_fixtures
from api.conftest import ApiHarness
from pydantic import SecretStr
from support import REPO_ROOT, environ_without_settings, run_cli
from support.stack import PipelineStack

from consensus_engine.api.auth import KeyRing, digest, new_key
from consensus_engine.client import ApiRequestError, ConsensusClient
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.devtools.process import free_port
from consensus_engine.domain.personas import DEFAULT_PERSONAS
from consensus_engine.run_progress import ServerSentEvent, StatusUpdate, StepUpdate
from consensus_engine.settings import Settings

api = api_fixtures.api  # the API served over a pipeline stack, shared with tests/api
make_api = api_fixtures.make_api

IDEA = "Let members of the bike club share a calendar of group rides."
"""The offline LLM's reviews are a function of the prompt, so its decision is fixed: revise."""
_RUN_ID = re.compile(r"\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")
_ERROR_LINE = re.compile(r"^consensus-engine: .+ \([A-Z_]+, request [0-9a-f]+\)$")


class _WithoutEvents(ConsensusClient):
    """The client facing an API (or proxy) without the event stream: it must poll."""

    def events(self, run_id: str, *, deadline: object = None) -> Iterator[ServerSentEvent]:
        raise ApiRequestError(404, "NOT_FOUND", "not found", "test")


def _env(api: ApiHarness, key: str | None = None) -> dict[str, str]:
    return environ_without_settings() | {
        "API_URL": api.base_url,
        "API_KEY": key if key is not None else api.keys["acme"],
    }


def _ok(api: ApiHarness, tmp_path: Path, *args: str) -> str:
    result = run_cli(*args, env=_env(api), cwd=tmp_path)
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _first_run_id(text: str) -> str:
    match = _RUN_ID.search(text)
    assert match, text
    return match.group(1)


def test_submit_follow_list_show_revise_and_diff(api: ApiHarness, tmp_path: Path) -> None:
    api.stack.start_worker()

    out = _ok(api, tmp_path, "submit", IDEA, "--priority", "high", "--wait")
    run_id = _first_run_id(out)
    assert f"Run {run_id} queued (high priority)." in out
    steps = ["expand", *(f"review_{p}" for p in DEFAULT_PERSONAS.ids), "aggregate"]
    for step in steps:  # live progress, one line per step change
        assert re.search(rf"\] {step} +completed", out), out
    assert re.search(r"\] run completed", out), out
    assert re.search(r"^Decision: (APPROVE|REVISE|REJECT)  \(weighted score \d\.\d{3}", out, re.M)
    for persona in DEFAULT_PERSONAS:
        assert re.search(rf"^  {persona.name} +score \d\.\d\d  weight \d\.\d\d", out, re.M), out
    assert re.search(r"^Usage: [\d,]+ input \+ [\d,]+ output tokens in 6 LLM call", out, re.M)

    context = tmp_path / "context.json"
    context.write_text(json.dumps({"members": 40, "city": "Ghent"}))
    out = _ok(api, tmp_path, "submit", IDEA, "--context-file", str(context), "--wait", "--json")
    detail = json.loads(out)  # nothing but the finished run's JSON
    second_id = detail["run_id"]
    assert detail["status"] == "completed"
    assert detail["extra_context"] == {"members": 40, "city": "Ghent"}
    assert [r["persona_id"] for r in detail["reviews"]] == list(DEFAULT_PERSONAS.ids)

    polling = _WithoutEvents(api.base_url, api.keys["acme"])  # as behind an SSE-less proxy
    third_id = str(polling.submit(IDEA)["run_id"])
    updates = list(polling.follow(third_id, poll_interval=0.1))
    assert updates[-1] == StatusUpdate("completed", final=True)
    done = {u.step_name for u in updates if isinstance(u, StepUpdate) and u.status == "completed"}
    assert done == set(steps)

    listing = _ok(api, tmp_path, "runs", "list")
    assert listing.splitlines()[0].startswith("RUN ID")
    assert run_id in listing and second_id in listing
    listed = json.loads(_ok(api, tmp_path, "runs", "list", "--status", "completed", "--json"))
    assert {item["run_id"] for item in listed["runs"]} == {run_id, second_id, third_id}
    assert json.loads(_ok(api, tmp_path, "runs", "list", "--limit", "1", "--json"))["next_cursor"]

    shown = _ok(api, tmp_path, "runs", "show", run_id)
    assert shown.startswith(f"Run {run_id}: completed (initial, high priority)")
    assert f"Idea: {IDEA}" in shown and "Decision: " in shown
    assert json.loads(_ok(api, tmp_path, "runs", "show", run_id, "--json"))["run_id"] == run_id

    out = _ok(
        api,
        tmp_path,
        "revise",
        run_id,
        "--notes",
        "Add a waiting list.",
        "--rerun",
        "critic,architect",
        "--wait",
    )
    revision_id = _first_run_id(out)
    assert f"Revision {revision_id} of {run_id} queued." in out
    assert "  re-runs: architect, critic" in out
    assert "  reuses:  optimist, security_guardian, user_advocate" in out
    assert re.search(r"\] review_critic +completed$", out, re.M), out
    for name in ("Optimist", "Security Guardian", "User Advocate"):
        assert re.search(rf"^  {name} +score \d\.\d\d  weight \d\.\d\d  \[reused", out, re.M)
    assert re.search(r"^  Critic +score \d\.\d\d  weight \d\.\d\d(?!  \[reused)", out, re.M)
    assert re.search(r"tokens in 3 LLM call", out), out  # the revised expand + two reviews
    assert "Decision: " in out

    out = _ok(api, tmp_path, "diff", run_id, revision_id)
    assert out.startswith(f"{run_id} -> {revision_id} (run1_is_parent_of_run2)")
    assert "Proposal:" in out and "Personas:" in out
    diff = json.loads(_ok(api, tmp_path, "diff", run_id, revision_id, "--json"))
    assert diff["metadata"]["relationship"] == "run1_is_parent_of_run2"
    assert {d["persona_id"] for d in diff["persona_deltas"]} == set(DEFAULT_PERSONAS.ids)

    out = _ok(api, tmp_path, "usage")  # both runs' calls, the revision's included
    assert out.startswith("Tenant acme\nDAY ")
    assert out.rstrip().endswith("Budget: no limits.")
    usage = json.loads(_ok(api, tmp_path, "usage", "--days", "1", "--json"))
    assert sum(day["calls"] for day in usage["days"]) >= 6 + 3


def test_a_council_run_then_a_retry_of_its_failed_chair(
    make_api: api_fixtures.ApiFactory, tmp_path: Path
) -> None:
    """Per-persona models on two providers, two rounds and a chair whose provider is down
    at first: the run completes with the chair failed, and ``retry`` re-runs the chair alone
    once its provider is back."""
    hosted, local, chair = "offline-hosted", "offline-local", "offline-chair"
    chair_port = free_port()
    catalogue = {
        hosted: {"free": True},
        local: {"free": True, "provider": "local"},
        chair: {"free": True, "provider": "chairs"},
    }
    with OfflineLLMServer(latency_ms=20) as local_server:
        providers = {
            "local": {"base_url": local_server.base_url},
            "chairs": {"base_url": f"http://127.0.0.1:{chair_port}/v1"},  # down for now
        }
        council = make_api(
            env={
                "EXPAND_MODEL": hosted,
                "REVIEW_MODEL": hosted,
                "MODEL_CATALOGUE_JSON": json.dumps(catalogue),
                "LLM_PROVIDERS_JSON": json.dumps(providers),
                "MAX_RETRIES_PER_PERSONA": "0",
            }
        )
        council.stack.start_worker()
        result = run_cli(
            "submit",
            IDEA,
            "--persona-model",
            f"critic={local}",
            "--rounds",
            "2",
            "--chair-model",
            chair,
            "--wait",
            env=_env(council),
            cwd=tmp_path,
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"  # the decision stands
        out, run_id = result.stdout, _first_run_id(result.stdout)
        for step in ("debate_critic", "aggregate", "chair"):
            assert re.search(rf"\] {step} +(completed|failed)", out), out
        assert "Personas (2 review rounds):" in out
        critic = re.search(r"^  Critic +score .*\n    (.*)$", out, re.M)
        assert critic and re.fullmatch(
            rf"{local} via local; first round \d\.\d\d -> \d\.\d\d \((held|[+-]\d\.\d\d)\)",
            critic.group(1),
        ), out
        assert re.search(rf"^    {hosted} via default; first round ", out, re.M), out
        heading = "Chair (model-written, does not change the decision)"
        assert f"{heading}: failed\n  model: {chair}\n  error: " in out, out
        assert f"  try again: consensus-engine retry {run_id}" in out
        assert "but its chair failed" in result.stderr
        decided = json.loads(_ok(council, tmp_path, "runs", "show", run_id, "--json"))["decision"]

        with OfflineLLMServer(port=chair_port):
            out = _ok(council, tmp_path, "retry", run_id, "--wait")
        assert f"Run {run_id} queued" in out and "  re-runs: chair\n" in out
        assert f"{heading}: completed\n  model: {chair} via chairs\n  summary: " in out, out
        detail = json.loads(_ok(council, tmp_path, "runs", "show", run_id, "--json"))
        assert detail["decision"] == decided  # the chair never touches the decision

        again = run_cli("retry", run_id, env=_env(council), cwd=tmp_path)
        assert again.returncode == 1 and "(CONFLICT, request " in again.stderr


def _runs(api: ApiHarness, tmp_path: Path, *filters: str) -> list[dict[str, Any]]:
    listing = json.loads(_ok(api, tmp_path, "runs", "list", "--json", *filters))
    runs: list[dict[str, Any]] = listing["runs"]
    return runs


def test_the_ci_gate_exits_on_the_decisions_listed_and_a_retried_step_reuses_its_run(
    api: ApiHarness, tmp_path: Path
) -> None:
    """``--fail-on`` against a real stack: the idea's decision (revise) closes the gate when
    listed (3) and not otherwise (0); the second submit of the same request finds the
    first's run through the default Idempotency-Key; a cancelled run exits 4."""
    # No worker yet: a run stays queued, so it can be cancelled before it starts.
    other = "Let the bike club lend spare helmets to new riders."
    cancelled_id = _first_run_id(_ok(api, tmp_path, "submit", other))
    assert _ok(api, tmp_path, "cancel", cancelled_id) == f"Run {cancelled_id} cancelled.\n"
    again = run_cli("submit", other, "--fail-on", "reject", env=_env(api), cwd=tmp_path)
    assert again.returncode == 4, f"{again.stdout}\n{again.stderr}"
    assert f"Run {cancelled_id} cancelled (normal priority)." in again.stdout  # the same run
    assert "an earlier submit of the same request made this run" in again.stdout
    assert "Gate: failed (the run ended without a decision)" in again.stdout
    assert f"run {cancelled_id} did not complete (cancelled)" in again.stderr

    api.stack.start_worker()
    gate = ("submit", IDEA, "--wait", "--fail-on")
    blocked = run_cli(*gate, "reject,revise", env=_env(api), cwd=tmp_path)
    assert blocked.returncode == 3, f"{blocked.stdout}\n{blocked.stderr}"
    run_id = _first_run_id(blocked.stdout)
    summary = blocked.stdout.split("\n\n", 1)[1].splitlines()
    assert re.fullmatch(
        r"Decision: REVISE  score 0\.\d{3} \(approve at 0\.80, revise at 0\.60\)", summary[0]
    )
    assert summary[1] == f"Run: {run_id}  {api.base_url}/runs/{run_id}"
    assert re.fullmatch(r"Blocking(: none| \(\d+\): .+)", summary[2]), summary
    assert summary[3:] == ["Gate: failed (revise is in --fail-on: reject, revise)"]
    assert blocked.stderr == (
        f"consensus-engine: gate failed: run {run_id} decided revise, which --fail-on lists "
        "(reject, revise)\n"
    )

    passed = run_cli(*gate, "reject", env=_env(api), cwd=tmp_path)  # a retried CI step
    assert passed.returncode == 0, f"{passed.stdout}\n{passed.stderr}"
    assert _first_run_id(passed.stdout) == run_id
    assert "Gate: passed (revise is not in --fail-on: reject)" in passed.stdout
    assert passed.stderr == ""
    assert [run["run_id"] for run in _runs(api, tmp_path, "--run-type", "initial")] == [
        run_id,
        cancelled_id,
    ]  # one run per request, newest first

    fresh = run_cli(*gate, "reject", "--no-idempotency-key", "--json", env=_env(api), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    detail = json.loads(fresh.stdout)
    assert detail["run_id"] != run_id and detail["decision"]["decision"] == "revise"
    assert len(_runs(api, tmp_path)) == 3
    assert {r["run_id"] for r in _runs(api, tmp_path, "--decision", "revise")} == {
        run_id,
        detail["run_id"],
    }
    assert [r["run_id"] for r in _runs(api, tmp_path, "--status", "cancelled")] == [cancelled_id]
    assert [r["run_id"] for r in _runs(api, tmp_path, "--search", "helmets")] == [cancelled_id]
    for direction in ("desc", "asc"):  # a run without a score comes last either way
        by_score = _runs(api, tmp_path, "--sort", "score", "--direction", direction)
        assert by_score[-1]["run_id"] == cancelled_id


def test_api_errors_are_one_line_with_code_and_request_id(api: ApiHarness, tmp_path: Path) -> None:
    wrong_key = "ce_" + "w" * 43
    result = run_cli("runs", "list", env=_env(api, key=wrong_key), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert _ERROR_LINE.match(result.stderr.strip()), result.stderr
    assert "(UNAUTHORIZED, request " in result.stderr
    assert wrong_key not in result.stderr and "Traceback" not in result.stderr

    flagged = run_cli(
        "--api-key",
        api.keys["globex"],
        "runs",
        "show",
        str(uuid.uuid4()),
        env=_env(api, key=wrong_key),
        cwd=tmp_path,
    )  # the flag wins over API_KEY; the run does not exist
    assert flagged.returncode == 1
    assert "(NOT_FOUND, request " in flagged.stderr
    assert api.keys["globex"] not in flagged.stderr + flagged.stdout

    empty = run_cli("submit", "   ", env=_env(api), cwd=tmp_path)
    assert empty.returncode == 2
    assert _ERROR_LINE.match(empty.stderr.strip()), empty.stderr
    assert "(VALIDATION_ERROR, request " in empty.stderr

    missing = str(uuid.uuid4())
    as_json = run_cli("runs", "show", missing, "--json", env=_env(api), cwd=tmp_path)
    assert as_json.returncode == 1 and as_json.stdout == ""
    failure = json.loads(as_json.stderr)  # one JSON object, and nothing else
    assert failure["exit_code"] == 1
    assert failure["error"]["code"] == "NOT_FOUND" and failure["error"]["http_status"] == 404
    assert missing in failure["error"]["message"]
    assert re.fullmatch(r"[0-9a-f]+", failure["error"]["request_id"])


def test_an_unreachable_api_is_named_in_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = environ_without_settings() | {"API_URL": url, "API_KEY": "ce_secret-key"}
    for args in (("runs", "list"), ("submit", IDEA, "--wait")):
        result = run_cli(*args, env=env, cwd=tmp_path)
        assert result.returncode == 1
        assert (
            result.stderr
            == f"consensus-engine: cannot reach the API at {url}: connection refused\n"
        )
        assert "ce_secret-key" not in result.stderr + result.stdout


def test_api_key_new_prints_a_working_key_and_its_entry(tmp_path: Path) -> None:
    result = run_cli("api-key", "new", "acme", env=environ_without_settings(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    keys = re.findall(r"^  (ce_\S+)$", result.stdout, re.M)
    entries = re.findall(r"^  (acme:[0-9a-f]{64})$", result.stdout, re.M)
    assert len(keys) == 1 and len(entries) == 1, result.stdout
    assert entries[0] == f"acme:{digest(keys[0])}"
    ring = KeyRing.from_settings(Settings.model_construct(api_keys=SecretStr(entries[0])))
    principal = ring.authenticate(f"Bearer {keys[0]}")
    assert principal is not None and principal.tenant == "acme"

    again = run_cli("api-key", "new", "acme", env=environ_without_settings(), cwd=tmp_path)
    assert re.findall(r"^  (ce_\S+)$", again.stdout, re.M) != keys  # a new key every time

    bad = run_cli("api-key", "new", "no spaces", env=environ_without_settings(), cwd=tmp_path)
    assert bad.returncode == 2 and "invalid tenant" in bad.stderr


def test_api_command_serves_the_api_from_the_settings(stack: PipelineStack, tmp_path: Path) -> None:
    key, port = new_key(), free_port()
    env = stack.env | {"API_KEYS": f"acme:{digest(key)}", "API_PORT": str(port)}
    env["API_METRICS_PORT"] = str(free_port())  # not the default: other APIs may hold it
    log = (tmp_path / "api.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "consensus_engine.cli", "api"],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"  # API_HOST's default, API_PORT from the settings
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "api.log").read_text()
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/ready", timeout=5) as response,
            ):
                assert response.status == 200
                break
            assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
            time.sleep(0.1)
        client_env = environ_without_settings() | {"API_URL": url, "API_KEY": key}
        listed = run_cli("runs", "list", "--json", env=client_env, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["runs"] == []
    finally:
        server.terminate()
        status = server.wait(timeout=30)
        log.close()
    assert status in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has stopped
    records = [json.loads(line) for line in (tmp_path / "api.log").read_text().splitlines()]
    assert "Application shutdown complete." in [r["message"] for r in records]  # as JSON
