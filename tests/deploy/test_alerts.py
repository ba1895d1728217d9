"""The Prometheus alert rules: promtool accepts them; their unit tests pass and cover each alert.

``helm/consensus-engine/files/alerts.yaml`` is a plain rule file that the chart's
PrometheusRule embeds as ``spec``; ``tests/deploy/promtool/alerts_test.yaml`` holds promtool
unit tests. promtool comes with Debian's ``prometheus`` package, which ``make test`` installs
(``make tools``); a missing promtool fails these tests rather than skipping them.
"""

from __future__ import annotations

import importlib
import inspect
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consensus_engine.api.metrics import ApiMetrics
from consensus_engine.observability.metrics import PipelineMetrics

# PyYAML comes with the dev extra (kubernetes-validate, schemathesis) but without type stubs.
yaml: Any = importlib.import_module("yaml")

ROOT = Path(__file__).resolve().parents[2]
RULES = Path("helm/consensus-engine/files/alerts.yaml")
RULE_TESTS = Path("tests/deploy/promtool/alerts_test.yaml")

# The deployment guide's four alerts, and what each expression must contain.
GUIDE_ALERTS: dict[str, tuple[str, ...]] = {
    "ConsensusEngineHighErrorRate": (
        'consensus_runs_finished_total{status="failed"}[5m]',
        "consensus_runs_finished_total[5m]",
        "> 0.05",
    ),
    "ConsensusEnginePubSubBacklog": (
        "stackdriver_pubsub_subscription_pubsub_googleapis_com_subscription_num_undelivered_messages",
        "> 100",
    ),
    "ConsensusEngineHighJobLatency": (
        "histogram_quantile(0.95",
        "rate(consensus_run_duration_seconds_bucket[10m])",
        "> 300",
    ),
    "ConsensusEngineContainerRestarts": (
        "increase(kube_pod_container_status_restarts_total{",
        "[10m]) > 3",
    ),
}
GUIDE_FOR = {"ConsensusEnginePubSubBacklog": "10m"}

# Metrics the application does not export: Prometheus itself, kube-state-metrics, and Cloud
# Monitoring through the stackdriver-exporter or Managed Prometheus.
EXTERNAL_METRICS = {
    "up",
    "kube_pod_container_status_restarts_total",
    "stackdriver_pubsub_subscription_pubsub_googleapis_com_subscription_num_undelivered_messages",
    "pubsub_googleapis_com:subscription_num_undelivered_messages",
}
SEVERITIES = {"critical", "warning"}
_DURATION = re.compile(r"^\d+[smh]$")
# A metric name right before a selector or a range, or given as __name__.
_METRIC_REF = re.compile(r'([A-Za-z_:][A-Za-z0-9_:]*)\s*[{\[]|__name__\s*=\s*"([^"]+)"')
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: run `make tools` (installs Debian's `prometheus` "
            "package, which ships promtool) or `apt-get install --no-install-recommends "
            "prometheus`"
        )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def _load(path: Path) -> Any:
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def _rules() -> list[dict[str, Any]]:
    document = _load(RULES)
    return [rule for group in document["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    alerts: dict[str, dict[str, Any]] = {}
    for rule in _rules():
        name = rule["alert"]
        assert name not in alerts, f"alert {name} is defined twice"
        alerts[name] = rule
    return alerts


def _exported_metric_names() -> set[str]:
    """Every sample name the pipeline and the API expose, from their own metric definitions."""
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    ApiMetrics(registry)
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def _dramatiq_metric_names() -> set[str]:
    """The names Dramatiq's Prometheus middleware registers (it creates them only in a worker)."""
    prometheus_middleware = importlib.import_module("dramatiq.middleware.prometheus")
    source = inspect.getsource(prometheus_middleware)
    return set(re.findall(r'"(dramatiq_[a-z_]+)"', source))


def test_promtool_checks_the_rule_file() -> None:
    result = _run("check", "rules", str(RULES))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(_rules())} rules found" in output, output


def test_promtool_unit_tests_pass() -> None:
    result = _run("test", "rules", str(RULE_TESTS))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output and "FAILED" not in output, output


def test_unit_tests_load_the_chart_rule_file() -> None:
    tests = _load(RULE_TESTS)
    rule_files = [(ROOT / RULE_TESTS).parent / name for name in tests["rule_files"]]
    assert [path.resolve() for path in rule_files] == [(ROOT / RULES).resolve()]


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = _alerts()
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _load(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            name = check["alertname"]
            assert name in alerts, f"test {case['name']!r} checks unknown alert {name}"
            expected = check.get("exp_alerts") or []
            if expected:
                firing.add(name)
                for alert in expected:
                    labels = alert.get("exp_labels", {})
                    annotations = alert.get("exp_annotations", {})
                    assert labels.get("severity") == alerts[name]["labels"]["severity"], name
                    assert set(annotations) == set(alerts[name]["annotations"]), name
            else:
                quiet.add(name)
    assert set(alerts) - firing == set(), "alerts without a test where they fire"
    assert set(alerts) - quiet == set(), "alerts without a test where they stay quiet"


def test_the_rule_file_is_a_prometheusrule_spec() -> None:
    document = _load(RULES)
    assert list(document) == ["groups"], "the chart embeds the whole file as the CRD's spec"
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names)), names
    assert all(group["rules"] for group in document["groups"])


def test_every_alert_has_for_severity_and_annotations() -> None:
    for name, rule in _alerts().items():
        assert name.startswith("ConsensusEngine"), name
        assert _DURATION.match(str(rule.get("for", ""))), f"{name}: missing or odd `for`"
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, name
        assert "{{" in annotations["description"], f"{name}: description without a value"
        assert all(str(text).strip() for text in annotations.values()), name


def test_the_guides_four_alerts_keep_their_thresholds() -> None:
    alerts = _alerts()
    for name, fragments in GUIDE_ALERTS.items():
        assert name in alerts, name
        expr = " ".join(alerts[name]["expr"].split())
        for fragment in fragments:
            assert fragment in expr, f"{name}: {fragment!r} not in {expr!r}"
    for name, duration in GUIDE_FOR.items():
        assert alerts[name]["for"] == duration, name
    backlog = alerts["ConsensusEnginePubSubBacklog"]
    assert "stackdriver-exporter" in backlog["annotations"]["runbook"]


def test_every_metric_in_the_rules_is_exported() -> None:
    known = _exported_metric_names() | _dramatiq_metric_names() | EXTERNAL_METRICS
    # The helpers themselves must find the names, or the check below proves nothing.
    assert {"consensus_runs_finished_total", "consensus_run_duration_seconds_bucket"} <= known
    assert "dramatiq_message_rejects_total" in known
    used: set[str] = set()
    for rule in _rules():
        for before_selector, named in _METRIC_REF.findall(rule["expr"]):
            name = named or before_selector
            if name not in _KEYWORDS:
                used.add(name)
    assert "consensus_llm_requests_total" in used and "up" in used, used
    assert used - known == set(), "metrics the rules use but nothing exports"
