"""The Cloud Run alerts: the deployment guide's four, as Cloud Monitoring alert policies over
log-based metrics and Pub/Sub's own, parsed with Google's types and applied by a script
that a fake ``gcloud`` on PATH records."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import get_args

import pytest
from google.cloud import monitoring_v3
from google.cloud.logging_v2.types import LogMetric
from google.protobuf import json_format
from support import REPO_ROOT

from consensus_engine.observability.logs import LifecycleEvent

MONITORING = REPO_ROOT / "deploy" / "cloudrun" / "monitoring"
APPLY = MONITORING / "apply.sh"
POLICIES = sorted((MONITORING / "alert-policies").glob("*.json"))
LOG_METRICS = sorted((MONITORING / "log-metrics").glob("*.json"))
PLACEHOLDERS = {
    "PROJECT_ID": "acme-prod",
    "WORKER_SERVICE": "pipeline-worker",
    "SUBSCRIPTION": "jobs-sub",
}
BUILT_IN_METRICS = {"pubsub.googleapis.com/subscription/num_undelivered_messages"}
"""Google's metrics the policies may use besides ours."""


def rendered(path: Path) -> dict[str, object]:
    text = path.read_text()
    for name, value in PLACEHOLDERS.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, f"{path.name} has a placeholder apply.sh does not fill"
    document: dict[str, object] = json.loads(text)
    return document


def policy(path: Path) -> monitoring_v3.AlertPolicy:
    message = monitoring_v3.AlertPolicy.pb(monitoring_v3.AlertPolicy())
    json_format.ParseDict(rendered(path), message, ignore_unknown_fields=False)
    parsed: monitoring_v3.AlertPolicy = monitoring_v3.AlertPolicy.wrap(message)
    return parsed


def log_metric(path: Path) -> LogMetric:
    message = LogMetric.pb(LogMetric())
    json_format.ParseDict(rendered(path), message, ignore_unknown_fields=False)
    parsed: LogMetric = LogMetric.wrap(message)
    return parsed


def test_the_four_alerts_of_the_guide_are_there() -> None:
    names = {policy(path).display_name.split(":")[1].split("(")[0].strip() for path in POLICIES}
    assert names == {"high error rate", "queue backlog", "high job latency", "worker crashes"}


@pytest.mark.parametrize("path", POLICIES + LOG_METRICS, ids=lambda p: p.name)
def test_a_file_with_an_unknown_field_fails_to_parse(path: Path) -> None:
    document = rendered(path)
    document["thresholdValu"] = 1
    parse_as = monitoring_v3.AlertPolicy if path in POLICIES else LogMetric
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(document, parse_as.pb(parse_as()), ignore_unknown_fields=False)


def test_each_log_metric_is_named_as_its_file() -> None:
    assert [log_metric(path).name for path in LOG_METRICS] == [p.stem for p in LOG_METRICS]


def test_policies_use_only_metrics_that_exist() -> None:
    ours = {f"logging.googleapis.com/user/{path.stem}" for path in LOG_METRICS}
    used = set()
    for path in POLICIES:
        for condition in policy(path).conditions:
            threshold = condition.condition_threshold
            for metric_filter in (threshold.filter, threshold.denominator_filter):
                used |= set(re.findall(r'metric\.type="([^"]+)"', metric_filter))
    assert used <= ours | BUILT_IN_METRICS, used - ours - BUILT_IN_METRICS
    assert ours <= used, "a log-based metric no policy uses"


def test_log_metrics_count_events_the_lifecycle_logs_emit() -> None:
    emitted = set(get_args(LifecycleEvent))
    for path in LOG_METRICS:
        metric = log_metric(path)
        events = set(re.findall(r'"([a-z_]+)"', metric.filter.split("lifecycle_event=", 1)[-1]))
        if "lifecycle_event" in metric.filter:
            assert events and events <= emitted, (path.name, events - emitted)
    assert {"job_completed", "job_failed"} <= emitted


def test_latency_is_the_enqueue_to_completion_time_in_milliseconds() -> None:
    (duration,) = [log_metric(p) for p in LOG_METRICS if p.stem == "consensus_job_duration"]
    assert duration.value_extractor == "EXTRACT(jsonPayload.duration_ms)"
    (latency,) = [policy(p) for p in POLICIES if p.stem == "high-latency"]
    assert latency.conditions[0].condition_threshold.threshold_value == 5 * 60 * 1000


# -- the apply script ---------------------------------------------------------------------------

FAKE_GCLOUD = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$GCLOUD_CALLS"
case "$*" in
  "logging metrics describe"*) [[ -n "${GCLOUD_EXISTING:-}" ]]; exit ;;
  "alpha monitoring policies list"*) [[ -z "${GCLOUD_EXISTING:-}" ]] || echo projects/p/1 ;;
esac
exit 0
"""


def apply(tmp_path: Path, *flags: str, existing: bool = False) -> tuple[str, list[str]]:
    """Run apply.sh with a fake ``gcloud`` first on PATH; its output and the calls made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "gcloud"
    fake.write_text(FAKE_GCLOUD)
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GCLOUD_CALLS": str(calls),
        "TMPDIR": str(tmp_path),  # where a dry run leaves the rendered files
        "GCLOUD_EXISTING": "1" if existing else "",
    }
    arguments = ["--project", "acme-prod", "--worker-service", "pipeline-worker"]
    arguments += ["--subscription", "jobs-sub", *flags]
    done = subprocess.run(
        ["bash", str(APPLY), *arguments], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout, calls.read_text().splitlines()


def test_the_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(APPLY)], check=True)


def test_apply_creates_what_is_missing_with_the_values_filled_in(tmp_path: Path) -> None:
    _, calls = apply(
        tmp_path, "--notification-channels", "projects/acme-prod/notificationChannels/7"
    )
    created = [c for c in calls if " create" in c]
    assert len([c for c in created if c.startswith("logging metrics create")]) == len(LOG_METRICS)
    policies = [c for c in created if c.startswith("alpha monitoring policies create")]
    assert len(policies) == len(POLICIES)
    assert all(
        "--notification-channels projects/acme-prod/notificationChannels/7" in c for c in policies
    )
    assert not [c for c in calls if " update" in c]


def test_apply_updates_what_exists(tmp_path: Path) -> None:
    _, calls = apply(tmp_path, existing=True)
    assert not [c for c in calls if " create" in c]
    assert len([c for c in calls if c.startswith("logging metrics update")]) == len(LOG_METRICS)
    updates = [c for c in calls if c.startswith("alpha monitoring policies update")]
    assert len(updates) == len(POLICIES)
    assert all(c.split()[4] == "projects/p/1" for c in updates)


def test_dry_run_changes_nothing_and_prints_the_changes(tmp_path: Path) -> None:
    printed, calls = apply(tmp_path, "--dry-run")
    assert all(" describe " in c or " list " in c for c in calls), calls
    commands = [line for line in printed.splitlines() if line.startswith("gcloud ")]
    assert len(commands) == len(LOG_METRICS) + len(POLICIES)
    rendered_file = commands[-1].split("--policy-from-file ")[1].split()[0]
    text = Path(rendered_file).read_text()
    assert "${" not in text
    assert "pipeline-worker" in text
