"""The API keeps the promise its OpenAPI schema makes, checked by schemathesis over real HTTP.

Why: clients are generated from ``/openapi.json`` and trust it. Schemathesis's engine (what
its CLI runs) derives requests from the served schema in every phase: documented examples,
boundary values and missing fields (coverage), random valid and invalid data (fuzzing), and
chains that follow the ``Location`` of a new run (stateful). Every answer must be no 5xx, a
documented status and content type, and a body matching the documented model. No operation
is left out. Random run ids only ever find nothing, so path ids are also drawn from real
runs made first (completed, failed, queued), and a few valid requests random data seldom
makes are sent as-is: then the full run detail, the diff, a revision, a retry, a cancel and
event streams are checked too. Seeded and deterministic, so a failure replays.

A plain test keeps the schema complete: every route documents the error envelope for the
errors it can answer with.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from fastapi import APIRouter
from fastapi.routing import APIRoute
from hypothesis import strategies as st
from schemathesis import Case, HookContext, Response, engine
from schemathesis.engine import events
from schemathesis.errors import FailureGroup
from schemathesis.schemas import BaseSchema
from starlette.routing import BaseRoute
from support.stack import SAMPLE_IDEA

from consensus_engine.api.app import create_app
from consensus_engine.api.auth import digest, new_key
from consensus_engine.settings import load_settings

from .conftest import ApiFactory, ApiHarness

SEED = 20_240_517
# Bounded for CI; SCHEMA_MAX_EXAMPLES=300 makes a deeper local hunt (minutes).
MAX_EXAMPLES = int(os.environ.get("SCHEMA_MAX_EXAMPLES", "30"))
SYNC_LLM_PATHS = ("/v1/expand-idea", "/v1/review-idea")
SYNC_LLM_MAX_EXAMPLES = 4
EVENTS_PATH = "/v1/runs/{run_id}/events"
EVENTS_MAX_EXAMPLES = 12
# Runs made during the run stay queued (no worker), so their streams would stay open: reading
# stops after the first event (the snapshot), and the per-request timeout bounds any stall.
EVENTS_MAX_EVENTS = 1
EVENTS_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
OPEN_PATHS = {"/health", "/ready"}
ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"
# Generous limits: the run is about the schema, not about the rate limit or the in-flight cap.
API_OVERRIDES: dict[str, Any] = {
    "API_DOCS_ENABLED": True,  # the schema under test; off by default in production
    "API_RATE_LIMIT_PER_MINUTE": 1_000_000,
    "API_RATE_LIMIT_BURST": 100_000,
    "API_MAX_RUNS_IN_FLIGHT": 1_000_000,
    "API_SYNC_TIMEOUT_SECONDS": 20,
}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


@dataclass
class Tally:
    """What the run sent and got back, per operation, and where its time went."""

    documented: set[str]
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    with_real_id: dict[str, Counter[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    scenarios: Counter[str] = field(default_factory=Counter)
    cases: int = 0

    def record(self, template: str, status: int, seconds: float, real_id: bool) -> None:
        if template not in self.documented:
            template = "(undocumented methods)"
        self.statuses.setdefault(template, Counter())[status] += 1
        if real_id:
            self.with_real_id.setdefault(template, Counter())[status] += 1
        self.seconds[template] = self.seconds.get(template, 0.0) + seconds

    def reached(self, template: str, status: int) -> bool:
        """Whether a real run's id got ``status``: random ids only ever find nothing."""
        return self.with_real_id.get(template, Counter())[status] > 0

    def table(self) -> str:
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phases.items())
        requests = sum(sum(counts.values()) for counts in self.statuses.values())
        scenarios = sum(self.scenarios.values())
        lines = [f"{self.cases} cases, {requests} requests in {scenarios} scenarios; {phases}"]
        for template, counts in sorted(self.statuses.items()):
            real = self.with_real_id.get(template, Counter())
            cells = " ".join(
                f"{status}x{count}" + (f" ({real[status]} real)" if real[status] else "")
                for status, count in sorted(counts.items())
            )
            lines.append(f"  {template:38} {self.seconds[template]:5.1f} s  {cells}")
        return "\n".join(lines)


def _config(harness: ApiHarness) -> schemathesis.Config:
    """Seeded and bounded; only the checks this test is about."""
    checks: dict[str, Any] = {"enabled": False} | {name: {"enabled": True} for name in CHECKS}
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # Generation time on a busy shared box says nothing about the API.
            "suppress-health-check": ["too_slow"],
            "base-url": harness.base_url,
            "headers": {"Authorization": f"Bearer {harness.keys['acme']}"},
            "request-timeout": REQUEST_TIMEOUT_S,
            "checks": checks,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "operations": [
                {
                    "include-path": list(SYNC_LLM_PATHS),
                    "generation": {"max-examples": SYNC_LLM_MAX_EXAMPLES},
                },
                {
                    "include-path": EVENTS_PATH,
                    "request-timeout": EVENTS_TIMEOUT_S,
                    "max-stream-events": EVENTS_MAX_EVENTS,
                    "generation": {"max-examples": EVENTS_MAX_EXAMPLES},
                },
            ],
        }
    )


def _submit(harness: ApiHarness) -> str:
    response = harness.acme.post("/v1/full-review", {"idea": SAMPLE_IDEA})
    assert response.status == 202, response.body
    run_id: str = response.json()["run_id"]
    return run_id


def _seed_runs(harness: ApiHarness) -> dict[str, str]:
    """Two completed runs (detail, diff, revisions), a failed one (retry), a queued one.

    The worker is stopped before the fuzzing: runs submitted during it stay queued.
    """
    stack = harness.stack
    worker = stack.start_worker(threads=4)
    completed = [_submit(harness), _submit(harness)]
    for run_id in completed:
        assert stack.wait_for(uuid.UUID(run_id)).status.value == "completed"
    stack.llm.push_faults("401")  # the next run's expand call: a permanent failure
    failed = _submit(harness)
    assert stack.wait_for(uuid.UUID(failed)).status.value == "failed"
    worker.stop()
    return {
        "completed": completed[0],
        "other": completed[1],
        "failed": failed,
        "queued": _submit(harness),
    }


# Valid requests random data seldom makes (the body must fit the run's state), sent first,
# through the same validation: (method, path, seed run, body).
DIRECTED: tuple[tuple[str, str, str, dict[str, Any] | None], ...] = (
    ("POST", "/v1/runs/{run_id}/revisions", "completed", {"edit_notes": "Start in one city."}),
    ("POST", "/v1/runs/{run_id}/retry", "failed", None),
    ("POST", "/v1/runs/{run_id}/cancel", "queued", None),
)


def _directed(schema: BaseSchema, seeds: dict[str, str], key: str) -> list[str]:
    failures = []
    for method, path, seed, body in DIRECTED:
        options: dict[str, Any] = {
            "path_parameters": {"run_id": seeds[seed]},
            "headers": {"Authorization": f"Bearer {key}"},  # config headers are for generated cases
        }
        if body is not None:
            options["body"] = body
        case = schema[path][method].Case(**options)
        try:
            case.call_and_validate()
        except FailureGroup as group:
            failures += [
                f"{method} {path} ({seed} run): {failure!s}" for failure in group.exceptions
            ]
    return failures


def _schema(harness: ApiHarness, real_ids: list[str], tally: Tally) -> BaseSchema:
    """The served schema, with hooks: real run ids mixed into path ids, every answer counted."""
    loaded = schemathesis.openapi.from_url(
        harness.base_url + "/openapi.json", config=_config(harness)
    )

    def flatmap_path_parameters(
        context: HookContext, path_parameters: dict[str, Any]
    ) -> st.SearchStrategy[dict[str, Any]]:
        """About half the time an id parameter names a real run instead of a random value."""
        if not path_parameters:  # None for operations without any
            return st.just(path_parameters)
        return st.fixed_dictionaries(
            {
                name: st.one_of(st.just(value), st.sampled_from(real_ids))
                if name.endswith("id")
                else st.just(value)
                for name, value in path_parameters.items()
            }
        )

    def after_call(context: HookContext, case: Case[Any], response: Response) -> None:
        ids = {str(value) for value in (case.path_parameters or {}).values()}
        tally.record(
            f"{case.method.upper()} {case.operation.path}",
            response.status_code,
            response.elapsed,
            bool(ids & set(real_ids)),
        )

    loaded.hook(flatmap_path_parameters)
    loaded.hook(after_call)
    return loaded


def _failures(schema: BaseSchema, tally: Tally) -> list[str]:
    """Run every phase (examples, coverage, fuzzing, stateful); each distinct failure with
    a request reproducing it."""
    found: dict[tuple[str, str, str], str] = {}
    started: dict[str, float] = {}
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted):
            started[event.phase.name.value] = event.timestamp
        elif isinstance(event, events.PhaseFinished) and event.phase.name.value in started:
            name = event.phase.name.value
            tally.phases[name] = event.timestamp - started[name]
        elif isinstance(event, events.ScenarioFinished):
            tally.scenarios[event.recorder.label] += 1
            tally.cases += len(event.recorder.cases)
            for checks in event.recorder.checks.values():
                for check in checks:
                    info = check.failure_info
                    if info is not None:
                        key = (event.recorder.label, check.name, info.failure.title)
                        found.setdefault(key, f"{info.failure.message}\n    {info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            found.setdefault((event.label, "error", event.info.title), event.info.message)
        elif isinstance(event, events.FatalError):
            raise event.exception
    return [
        f"{label}: {check}: {title}\n    {text}" for (label, check, title), text in found.items()
    ]


def test_every_answer_matches_the_schema(make_api: ApiFactory) -> None:
    harness = make_api(api=API_OVERRIDES, latency_ms=1)
    seeds = _seed_runs(harness)
    real_ids = sorted(seeds.values())
    paths = harness.acme.get("/openapi.json").json()["paths"]
    tally = Tally({f"{method.upper()} {path}" for path, item in paths.items() for method in item})

    schema = _schema(harness, real_ids, tally)
    failures = _directed(schema, seeds, harness.keys["acme"]) + _failures(schema, tally)

    print(f"\nschemathesis: {tally.table()}", file=sys.stderr)
    assert not failures, "\n".join(failures)
    assert tally.documented <= set(tally.statuses), "operations never called"
    assert tally.reached("GET /v1/runs/{run_id}", 200), tally.table()
    assert tally.reached(f"GET {EVENTS_PATH}", 200), tally.table()
    assert tally.reached("GET /v1/runs/{run_id}/diff/{other_id}", 200), tally.table()
    for method, path, _, _ in DIRECTED:
        assert any(tally.reached(f"{method} {path}", code) for code in (200, 202)), tally.table()


# -- the schema documents every error ------------------------------------------------------


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every endpoint, through the routers the app includes."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if isinstance(included, APIRouter):
            yield from _api_routes(included.routes)


def _error_ref(operation: dict[str, Any], status: str) -> str | None:
    content = operation["responses"].get(status, {}).get("content", {})
    reference: str | None = content.get("application/json", {}).get("schema", {}).get("$ref")
    return reference


def test_the_schema_documents_every_route_and_its_errors() -> None:
    # What /openapi.json serves; building it needs no database or broker.
    app = create_app(load_settings(api_keys=f"acme:{digest(new_key())}"))
    document: dict[str, Any] = app.openapi()
    served = {
        (method.lower(), route.path)
        for route in _api_routes(app.routes)
        if route.include_in_schema  # e.g. the 405 route naming /v1/runs' methods in Allow
        for method in route.methods or ()
    }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == documented
    expected_routes = {
        ("post", "/v1/full-review"),
        ("post", "/v1/runs"),
        ("get", "/v1/runs"),
        ("get", "/v1/runs/{run_id}"),
        ("get", EVENTS_PATH),
        ("post", "/v1/runs/{run_id}/revisions"),
        ("get", "/v1/runs/{run_id}/diff/{other_id}"),
        ("post", "/v1/runs/{run_id}/cancel"),
        ("post", "/v1/runs/{run_id}/retry"),
        ("post", "/v1/expand-idea"),
        ("post", "/v1/review-idea"),
        ("get", "/health"),
        ("get", "/ready"),
    }
    assert expected_routes <= documented, expected_routes - documented
    assert "/metrics" not in document["paths"]  # served on a port of its own

    missing: list[str] = []
    for path, item in document["paths"].items():
        if path in OPEN_PATHS:
            continue
        for method, operation in item.items():
            expected = {"401", "429"}
            if operation.get("parameters") or "requestBody" in operation:
                expected.add("422")
            if "requestBody" in operation:
                expected.add("413")
            if "{run_id}" in path:
                expected.add("404")
            missing += [
                f"{method.upper()} {path}: {status}"
                for status in sorted(expected)
                if _error_ref(operation, status) != ENVELOPE_REF
            ]
            successes = [code for code in operation["responses"] if code.startswith("2")]
            assert successes, f"{method.upper()} {path} documents no success"
    assert not missing, "error responses without the envelope model:\n" + "\n".join(missing)
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})
