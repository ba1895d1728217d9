"""Pipeline metrics: values in a private registry, label mapping, lazy import, multiprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.domain.budgets import Budget, Spend, standings
from consensus_engine.domain.runs import RunStatus
from consensus_engine.domain.schemas import ReviewDraft
from consensus_engine.llm.client import LLMClient
from consensus_engine.llm.errors import LLMError
from consensus_engine.llm.records import CallRecord, LlmCallOutcome
from consensus_engine.observability.metrics import (
    METRIC_NAMES,
    PipelineMetrics,
    pipeline_metrics,
    render_metrics,
    step_labels,
)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> PipelineMetrics:
    return PipelineMetrics(registry)


def call(
    step: str, *, outcome: LlmCallOutcome = LlmCallOutcome.SUCCESS, cost: str = "0.0015"
) -> CallRecord:
    return CallRecord(
        step=step,
        model="gpt-4.1-mini",
        mode="responses",
        attempt=1,
        outcome=outcome,
        input_tokens=1000,
        output_tokens=250,
        cost_usd=Decimal(cost),
        priced=True,
        latency_ms=812.0,
    )


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    return {**env, **extra}


@pytest.mark.parametrize(
    ("step", "labels"),
    [
        ("expand", ("expand", "")),
        ("review_architect", ("review", "architect")),
        ("review_security_guardian", ("review", "security_guardian")),
        ("aggregate", ("aggregate", "")),
        ("revise", ("revise", "")),
    ],
)
def test_step_labels(step: str, labels: tuple[str, str]) -> None:
    assert step_labels(step) == labels


def test_run_finished(metrics: PipelineMetrics, registry: CollectorRegistry) -> None:
    metrics.run_finished(status="completed", decision="approve", seconds=7.0)
    metrics.run_finished(status="completed", decision="approve", seconds=0.2)
    metrics.run_finished(status="failed", decision=None, seconds=None)
    value = registry.get_sample_value
    assert (
        value("consensus_runs_finished_total", {"status": "completed", "decision": "approve"}) == 2
    )
    assert value("consensus_runs_finished_total", {"status": "failed", "decision": ""}) == 1
    assert value("consensus_run_duration_seconds_count", {"status": "completed"}) == 2
    assert value("consensus_run_duration_seconds_sum", {"status": "completed"}) == 7.2
    assert value("consensus_run_duration_seconds_bucket", {"status": "completed", "le": "0.5"}) == 1
    assert value("consensus_run_duration_seconds_bucket", {"status": "completed", "le": "5.0"}) == 1
    assert (
        value("consensus_run_duration_seconds_bucket", {"status": "completed", "le": "10.0"}) == 2
    )
    assert value("consensus_run_duration_seconds_bucket", {"status": "completed", "le": "3600.0"})
    assert value("consensus_run_duration_seconds_count", {"status": "failed"}) is None


def test_negative_durations_count_as_zero(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    metrics.run_finished(status="completed", decision="reject", seconds=-1.5)
    metrics.step_finished(step="expand", outcome="completed", seconds=-0.1)
    value = registry.get_sample_value
    assert value("consensus_run_duration_seconds_sum", {"status": "completed"}) == 0
    labels = {"step": "expand", "persona": "", "outcome": "completed"}
    assert value("consensus_step_duration_seconds_sum", labels) == 0


def test_step_finished_labels_kind_and_persona(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    metrics.step_finished(step="review_architect", outcome="completed", seconds=0.3)
    metrics.step_finished(step="review_architect", outcome="retried", seconds=12.0)
    metrics.step_finished(step="expand", outcome="failed", seconds=0.07)
    value = registry.get_sample_value
    review = {"step": "review", "persona": "architect"}
    assert value("consensus_step_duration_seconds_count", {**review, "outcome": "completed"}) == 1
    assert value("consensus_step_duration_seconds_sum", {**review, "outcome": "retried"}) == 12.0
    expand = {"step": "expand", "persona": "", "outcome": "failed"}
    assert value("consensus_step_duration_seconds_bucket", {**expand, "le": "0.05"}) == 0
    assert value("consensus_step_duration_seconds_bucket", {**expand, "le": "0.1"}) == 1
    by_name = {**review, "step": "review_architect", "outcome": "completed"}
    assert value("consensus_step_duration_seconds_count", by_name) is None


def test_llm_calls(metrics: PipelineMetrics, registry: CollectorRegistry) -> None:
    metrics.llm_calls(
        [
            call("expand"),
            call("expand", outcome=LlmCallOutcome.RATE_LIMITED, cost="0"),
            call("review_critic", cost="0.0025"),
        ],
        models={"gpt-4.1-mini"},
    )
    value = registry.get_sample_value
    model = {"model": "gpt-4.1-mini"}
    requests = "consensus_llm_requests_total"
    sent = {**model, "provider": "default"}
    assert value(requests, {**sent, "step": "expand", "outcome": "success"}) == 1
    assert value(requests, {**sent, "step": "expand", "outcome": "rate_limited"}) == 1
    assert value(requests, {**sent, "step": "review", "outcome": "success"}) == 1
    tokens = "consensus_llm_tokens_total"
    assert value(tokens, {**model, "step": "expand", "kind": "input"}) == 2000
    assert value(tokens, {**model, "step": "expand", "kind": "output"}) == 500
    assert value(tokens, {**model, "step": "review", "kind": "output"}) == 250
    cost = "consensus_llm_cost_usd_total"
    assert value(cost, {**model, "step": "expand"}) == pytest.approx(0.0015)
    assert value(cost, {**model, "step": "review"}) == pytest.approx(0.0025)


def test_llm_calls_of_nothing_adds_nothing(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    metrics.llm_calls([], models={"gpt-4.1-mini"})
    assert registry.get_sample_value("consensus_llm_requests_total") is None


def test_spend_is_counted_by_tenant_for_the_tenants_the_budgets_name(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    named = frozenset({"acme"})
    models = {"gpt-4.1-mini"}
    metrics.llm_calls(
        [call("expand"), call("review_critic")], models=models, tenant="acme", tenants=named
    )
    metrics.llm_calls([call("expand")], models=models, tenant="tenant-1234", tenants=named)
    metrics.llm_calls([call("expand")], models=models, tenant=None, tenants=named)
    value = registry.get_sample_value
    assert value("consensus_tenant_spend_usd_total", {"tenant": "acme"}) == pytest.approx(0.003)
    assert value("consensus_tenant_spend_usd_total", {"tenant": "other"}) == pytest.approx(0.003)
    assert value("consensus_tenant_spend_usd_total", {"tenant": "tenant-1234"}) is None


def test_rate_limit_waits_by_model_and_outcome(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    metrics.rate_limit_wait(model="gpt-4.1-mini", admitted=True, seconds=0.002)
    metrics.rate_limit_wait(model="gpt-4.1-mini", admitted=True, seconds=1.5)
    metrics.rate_limit_wait(model="gpt-4.1-mini", admitted=False, seconds=2.0)
    value = registry.get_sample_value
    wait = "consensus_llm_rate_limit_wait_seconds"
    admitted = {"model": "gpt-4.1-mini", "outcome": "admitted"}
    assert value(f"{wait}_count", admitted) == 2
    assert value(f"{wait}_bucket", {**admitted, "le": "0.005"}) == 1
    assert value(f"{wait}_sum", {"model": "gpt-4.1-mini", "outcome": "deferred"}) == 2.0


def test_budget_left_by_tenant_and_limit(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    at = datetime(2026, 12, 7, 12, tzinfo=UTC)
    budget = Budget(usd_per_day=Decimal(5), tokens_per_day=1000)
    metrics.budget_left(
        "acme", standings(budget, Spend(at, usd_today=Decimal("1.25"), tokens_today=1500))
    )
    value = registry.get_sample_value
    assert value("consensus_tenant_budget_left", {"tenant": "acme", "limit": "usd_per_day"}) == 3.75
    assert value("consensus_tenant_budget_left", {"tenant": "acme", "limit": "tokens_per_day"}) == 0
    assert (
        value("consensus_tenant_budget_left", {"tenant": "acme", "limit": "usd_per_month"}) is None
    )


def test_idempotent_skip_counts_the_step_kind(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    metrics.idempotent_skip(step="review_optimist")
    metrics.idempotent_skip(step="review_critic")
    metrics.idempotent_skip(step="aggregate")
    value = registry.get_sample_value
    assert value("consensus_idempotent_skips_total", {"step": "review"}) == 2
    assert value("consensus_idempotent_skips_total", {"step": "aggregate"}) == 1


def test_runs_in_status_sets_every_status(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    metrics.runs_in_status({"running": 4, RunStatus.QUEUED: 2})
    metrics.runs_in_status({"queued": 1})
    values = {
        status.value: registry.get_sample_value("consensus_runs", {"status": status.value})
        for status in RunStatus
    }
    assert values == {"queued": 1, "running": 0, "completed": 0, "failed": 0, "cancelled": 0}


def test_sweeper_action(metrics: PipelineMetrics, registry: CollectorRegistry) -> None:
    metrics.sweeper_action("requeued")
    metrics.sweeper_action("requeued", 3)
    metrics.sweeper_action("failed_stale", 0)
    value = registry.get_sample_value
    assert value("consensus_sweeper_actions_total", {"action": "requeued"}) == 4
    assert value("consensus_sweeper_actions_total", {"action": "failed_stale"}) == 0


def test_metric_names_are_the_collected_family_names(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    assert sorted(family.name for family in registry.collect()) == sorted(METRIC_NAMES)


def test_two_instances_cannot_share_a_registry(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    with pytest.raises(ValueError, match="Duplicated"):
        PipelineMetrics(registry)


def test_pipeline_metrics_is_one_instance_across_threads() -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        instances = list(pool.map(lambda _: pipeline_metrics(), range(32)))
    assert all(instance is instances[0] for instance in instances)
    assert pipeline_metrics() is instances[0]


def test_render_metrics_of_the_default_registry() -> None:
    pipeline_metrics().sweeper_action("render_test")
    body, content_type = render_metrics(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert b'consensus_sweeper_actions_total{action="render_test"}' in body


def test_importing_the_module_does_not_import_prometheus_client() -> None:
    code = (
        "import consensus_engine.observability.metrics, sys; "
        "assert 'prometheus_client' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env(), timeout=60)


def test_render_metrics_reads_a_multiprocess_directory(tmp_path: Path) -> None:
    """The directory is set after import, as Dramatiq's middleware does at process boot."""
    code = textwrap.dedent(
        """
        import os, sys
        from consensus_engine.observability import metrics

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
        pipeline = metrics.pipeline_metrics()
        pipeline.run_finished(status="completed", decision="approve", seconds=3.0)
        pipeline.runs_in_status({"queued": 2})
        body, content_type = metrics.render_metrics(sys.argv[1])
        sys.stdout.write(content_type + "\\n" + body.decode())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert list(tmp_path.glob("*.db")), "no multiprocess files were written"
    content_type, *lines = result.stdout.splitlines()
    assert content_type.startswith("text/plain")
    assert 'consensus_runs_finished_total{decision="approve",status="completed"} 1.0' in lines
    assert 'consensus_run_duration_seconds_count{status="completed"} 1.0' in lines
    assert 'consensus_runs{status="queued"} 2.0' in lines
    assert 'consensus_runs{status="running"} 0.0' in lines


def test_a_model_outside_the_configured_ones_is_counted_as_other(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    metrics.llm_calls([call("expand")], models={"another-model"})
    labels = {"model": "other", "provider": "default", "step": "expand", "outcome": "success"}
    assert registry.get_sample_value("consensus_llm_requests_total", labels) == 1
    mine = {**labels, "model": "gpt-4.1-mini"}
    assert registry.get_sample_value("consensus_llm_requests_total", mine) is None


def test_llm_request_duration_observes_every_attempt_of_a_real_server(
    metrics: PipelineMetrics, registry: CollectorRegistry
) -> None:
    """Each HTTP attempt, the failed one too, lands in the latency histogram by model and
    step kind: the offline server answers after 300 ms, so every attempt is past 0.25 s."""
    calls: list[CallRecord] = []
    with (
        OfflineLLMServer(latency_ms=300) as server,
        LLMClient(api_key=None, base_url=server.base_url, mode="chat") as client,
    ):
        server.push_faults("500")
        for _ in range(2):
            try:
                generation = client.generate(
                    ReviewDraft,
                    system="You review proposals as the Critic.",
                    user="Let teams book meeting rooms from chat.",
                    model="gpt-4.1-mini",
                    temperature=0.2,
                    step="review_critic",
                )
            except LLMError as error:
                calls += error.calls
            else:
                calls += generation.calls
    assert [call.outcome for call in calls] == ["server_error", "success"]

    metrics.llm_calls(calls, models={"gpt-4.1-mini"})

    value = registry.get_sample_value
    labels = {"model": "gpt-4.1-mini", "provider": "default", "step": "review"}
    duration = "consensus_llm_request_duration_seconds"
    assert value(f"{duration}_count", labels) == 2
    assert value(f"{duration}_bucket", {**labels, "le": "0.25"}) == 0
    assert value(f"{duration}_bucket", {**labels, "le": "120.0"}) == 2
    assert value(f"{duration}_sum", labels) == pytest.approx(
        sum(call.latency_ms for call in calls) / 1000
    )
