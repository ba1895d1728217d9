"""The Grafana dashboard and the alert rules query only metrics our processes export.

A real worker and the real API serve ``/metrics`` on their metrics ports after real runs; a
real Prometheus server scrapes them and answers every dashboard query, with the dashboard's
``namespace`` and ``job`` variables set as Grafana would, and lists the jobs its ``job``
variable offers.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import yaml  # type: ignore[import-untyped]
from api.conftest import ApiFactory, ApiHarness, make_api  # noqa: F401  (the fixture)
from support import REPO_ROOT
from support.prometheus import running_prometheus

from consensus_engine.db.types import utcnow
from consensus_engine.devtools.offline_llm import Fault
from consensus_engine.domain.runs import RunStatus
from consensus_engine.messaging import job_queue

CHART_FILES = Path(REPO_ROOT) / "helm" / "consensus-engine" / "files"
DASHBOARD = CHART_FILES / "dashboard.json"
ALERTS = CHART_FILES / "alerts.yaml"
IDEA = "Let people book a bike repair slot online and get a text when it is ready."

# Exported by other exporters, never by our processes: kube-state-metrics (restarts), the
# Stackdriver exporter (the Pub/Sub backlog) and Prometheus itself (``up``).
EXTERNAL = frozenset(
    {
        "kube_pod_container_status_restarts_total",
        "stackdriver_pubsub_subscription_pubsub_googleapis_com_subscription_num_undelivered_messages",
        "up",
        # Google Cloud Managed Service for Prometheus' name of the same backlog metric.
        "pubsub_googleapis_com:subscription_num_undelivered_messages",
    }
)
# Of those, the ones no test process serves, so their queries may return nothing here.
ABSENT_LOCALLY = EXTERNAL - {"up"}
# The job names of the chart's scrape configs, which ``up{job=...}`` selectors use.
API_JOB = "consensus-engine-api"
WORKER_JOB = "consensus-engine-worker"
# What Grafana puts in place of its variables before a query leaves it: the namespace
# variable at "All" (its allValue; the local targets have no namespace label), and both jobs
# picked in the multi-value job variable (Grafana joins the values as a regex alternation).
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
    "$job": f"({API_JOB}|{WORKER_JOB})",
}
# Every selector of our own metrics on the dashboard carries these, so that two releases
# scraped by one Prometheus stay apart.
RELEASE_MATCHERS = ('namespace=~"$namespace"', 'job=~"$job"')
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")

# -- PromQL -----------------------------------------------------------------------------------

KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(\s*\()?")
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]+)"')
_UP_SELECTOR = re.compile(r"\bup\s*\{[^{}]*\}")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside ``{}``, ``by (...)`` and the like) or durations; plus the names
    selected with ``{__name__="..."}``."""
    names = set(_NAME_MATCHER.findall(expr))
    bare = _STRING.sub('""', expr)
    bare = _MATCHERS.sub("{}", bare)
    bare = _RANGE.sub("[]", bare)
    bare = _LABEL_LIST.sub(" ", bare)
    for match in _IDENTIFIER.finditer(bare):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def family(name: str) -> str:
    """The metric family of a sample name: ``x_bucket`` -> ``x``, ``x_total`` -> ``x``."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def dashboard_queries() -> list[tuple[str, str]]:
    """``(panel title, expr)`` of every target of every panel, rows' panels included."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    queries: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            queries.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return queries


def alert_queries() -> list[tuple[str, str]]:
    """``(alert or record name, expr)`` of every rule in the chart's alert rules file."""
    assert ALERTS.exists(), f"{ALERTS} is missing"
    found: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append((str(node.get("alert") or node.get("record")), node["expr"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(ALERTS.read_text()))
    assert found, f"no rule expressions in {ALERTS}"
    return found


def dashboard_variables() -> dict[str, dict[str, Any]]:
    """The dashboard's template variables by name."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def test_the_tokenizer_finds_series_and_skips_functions_labels_and_keywords() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, step) (rate(a_seconds_bucket{step="b_c",'
        ' x=~"y|z"}[$__rate_interval]))) > on (job) group_left(team) b_info'
        " or vector(0) unless c_total offset 5m and sum(d) without (pod)"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_info", "c_total", "d"}
    assert metric_names('up{job="consensus-engine-api"} == 0') == {"up"}
    assert metric_names('{__name__="e:f", a="b"} or g') == {"e:f", "g"}
    assert family("a_seconds_bucket") == "a_seconds" and family("c_total") == "c"
    # The dashboard is parsed the same way: the metrics it is meant to show are there.
    used = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    assert {
        "dramatiq_messages_total",
        "consensus_run_duration_seconds_bucket",
        "consensus_step_duration_seconds_bucket",
        "consensus_llm_tokens_total",
        "consensus_llm_cost_usd_total",
        "consensus_llm_request_duration_seconds_bucket",
        "consensus_runs",
        "stackdriver_pubsub_subscription_pubsub_googleapis_com_subscription_num_undelivered_messages",
    } <= used, sorted(used)


def test_every_query_of_our_metrics_is_filtered_by_namespace_and_job() -> None:
    checked = 0
    for title, expr in dashboard_queries():
        for name in metric_names(expr) - (EXTERNAL - {"up"}):
            for selector in re.finditer(rf"(?<![\w:]){re.escape(name)}(\{{[^{{}}]*\}})?", expr):
                matchers = selector.group(1) or ""
                assert all(m in matchers for m in RELEASE_MATCHERS), (title, expr)
                checked += 1
    assert checked >= 30, checked
    variables = dashboard_variables()
    for name in ("namespace", "job"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["includeAll"] is True, name
        assert variable["allValue"] == ".*", name
        label_values = _LABEL_VALUES.match(variable["query"]["query"])
        assert label_values and label_values.group(2) == name, variable["query"]
    # The job list follows the namespace picked.
    assert 'namespace=~"$namespace"' in variables["job"]["query"]["query"]
    assert variables["job"]["multi"] is True


# -- a short, real run -------------------------------------------------------------------------


BUDGETED = {"TENANT_BUDGETS_JSON": json.dumps({"acme": {"usd_per_day": 100}})}
"""A budget for the scenario's tenant, so that what is left of it is exported."""


def submit(api: ApiHarness) -> uuid.UUID:
    response = api.acme.post("/v1/full-review", {"idea": IDEA})
    assert response.status == 202, response.body
    return uuid.UUID(response.json()["run_id"])


def run_scenario(api: ApiHarness, completed_runs: int, *, time_out_one: bool = False) -> None:
    """Completed runs (the first LLM call fails once and is retried), a run whose expand
    fails on every attempt (retries exhausted: dead-lettered) and, with ``time_out_one``,
    a run the sweeper fails past its deadline: every outcome the dashboard and alerts count."""
    api.stack.llm.push_faults("500")
    for _ in range(completed_runs):
        run = api.stack.wait_for(submit(api))
        assert run.status is RunStatus.COMPLETED, run.error
    attempts = api.stack.settings.max_retries_per_persona + 1
    exhausting: list[Fault] = ["500"] * attempts
    api.stack.llm.push_faults(*exhausting)
    failed = api.stack.wait_for(submit(api))
    assert failed.status is RunStatus.FAILED, failed.status
    if time_out_one:
        # Past its deadline: the sweeper fails it. Its message arrives older than the
        # worker's age limit (as after a long outage): Dramatiq dead-letters it (a reject),
        # and the sweeper does not send it again.
        late_id = api.stack.submit(publish=False, job_timeout_seconds=1)
        deadline = api.stack.run(late_id).deadline_at
        assert deadline is not None
        threading.Event().wait(max(0.0, (deadline - utcnow()).total_seconds()))
        too_old = api.stack.settings.worker_job_timeout_seconds * 1000 + 60_000
        stale: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=job_queue(api.stack.settings),
            actor_name="expand",
            args=(str(late_id),),
            kwargs={},
            options={},
            message_timestamp=int(time.time() * 1000) - too_old,
        )
        api.stack.broker.enqueue(stale)
        late = api.stack.wait_for(late_id)
        assert late.status is RunStatus.FAILED, late.status
    # Reads, so the API also counts GETs by route.
    assert api.acme.get(f"/v1/runs/{failed.id}").status == 200


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


def sample_names(exposition: str) -> set[str]:
    """Names of the samples in a text exposition (families without samples do not count)."""
    return {
        re.split(r"[{\s]", line, maxsplit=1)[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }


def test_every_dashboard_and_alert_metric_is_exported(make_api: ApiFactory) -> None:  # noqa: F811
    api = make_api(latency_ms=20, env=BUDGETED)
    worker = api.stack.start_worker()
    run_scenario(api, completed_runs=1, time_out_one=True)

    queries = dashboard_queries() + alert_queries()
    used = {name: where for where, expr in queries for name in metric_names(expr)}
    deadline = time.monotonic() + 20
    while True:  # a message is dead-lettered just after its run is marked failed
        exported = sample_names(scrape(f"http://127.0.0.1:{worker.metrics_port}/metrics"))
        exported |= sample_names(scrape(api.metrics_url))
        missing = {name: where for name, where in used.items() if name not in exported | EXTERNAL}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not missing, (missing, sorted(exported))
    # Every external name is used somewhere, or it would not need an exception.
    assert set(used) >= EXTERNAL, sorted(EXTERNAL - set(used))
    assert {family(name) for name in used} >= {
        "consensus_runs_finished",
        "consensus_run_duration_seconds",
        "dramatiq_message_errors",
        "consensus_api_requests",
    }


def test_prometheus_scrapes_the_worker_and_api_and_answers_every_dashboard_query(
    make_api: ApiFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    api = make_api(latency_ms=20, env=BUDGETED)
    worker = api.stack.start_worker()
    api_address = f"127.0.0.1:{api.settings.api_metrics_port}"
    targets = {API_JOB: [api_address], WORKER_JOB: [f"127.0.0.1:{worker.metrics_port}"]}
    with running_prometheus(tmp_path, targets) as prometheus:
        run_scenario(api, completed_runs=2)
        queries = [(title, substitute(expr)) for title, expr in dashboard_queries()]
        assert not [expr for _, expr in queries if "$" in expr], "an unknown Grafana variable"
        answers: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 45
        while True:  # until every query has data (rates need two scrapes after the runs)
            answers = {expr: prometheus.query(expr) for _, expr in queries}
            empty = [
                expr
                for expr, answer in answers.items()
                if answer.get("status") != "success"
                or (not answer["data"]["result"] and not metric_names(expr) & ABSENT_LOCALLY)
            ]
            if not empty or time.monotonic() > deadline:
                break
            time.sleep(0.5)

        errors = {e: a for e, a in answers.items() if a.get("status") != "success"}
        assert not errors, errors
        without_data = [
            (title, expr)
            for title, expr in queries
            if not answers[expr]["data"]["result"] and not metric_names(expr) & ABSENT_LOCALLY
        ]
        assert not without_data, (without_data, prometheus.targets())
        health = {t["labels"]["job"]: t["health"] for t in prometheus.targets()}
        assert health == {API_JOB: "up", WORKER_JOB: "up"}, prometheus.targets()
        # The variables' own queries: the job variable offers the API's and the worker's job.
        offered: dict[str, set[str]] = {}
        for name, variable in dashboard_variables().items():
            if variable["type"] != "query":
                continue
            label_values = _LABEL_VALUES.match(variable["query"]["query"])
            assert label_values, variable["query"]
            selector, label = substitute(label_values.group(1)), label_values.group(2)
            answer = prometheus.query(f"count by ({label}) ({selector})")
            assert answer.get("status") == "success", (name, answer)
            offered[name] = {s["metric"].get(label, "") for s in answer["data"]["result"]}
        assert offered == {"namespace": {""}, "job": {API_JOB, WORKER_JOB}}, offered
        # The alert rules parse and evaluate against the same data, and their ``up``
        # selectors match the jobs scraped here.
        up_selectors = []
        for name, expr in alert_queries():
            answer = prometheus.query(expr)
            assert answer.get("status") == "success", (name, answer)
            up_selectors += _UP_SELECTOR.findall(expr)
        assert up_selectors, "the alerts watch no scrape target"
        for selector in up_selectors:
            assert prometheus.query(selector)["data"]["result"], (selector, health)
