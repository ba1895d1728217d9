"""Prometheus metrics of the pipeline: runs, steps, LLM calls and their latency, idempotent
skips, the sweeper, waits at the rate limit, and tenants' spend and budgets.

``prometheus_client`` decides at *its* import whether it runs in multiprocess
mode (it reads ``PROMETHEUS_MULTIPROC_DIR`` then), and Dramatiq's Prometheus
middleware sets that variable in ``after_process_boot``, after the worker has
imported our modules. So this module imports ``prometheus_client`` only inside
functions: nothing may touch it before the worker process has booted.
"""

from __future__ import annotations

import threading
from collections.abc import Container, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from consensus_engine.domain.runs import RunStatus, split_persona_step

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from consensus_engine.domain.budgets import Standing
    from consensus_engine.llm.records import CallRecord

RUNS_FINISHED = "consensus_runs_finished"
RUN_DURATION = "consensus_run_duration_seconds"
STEP_DURATION = "consensus_step_duration_seconds"
LLM_REQUESTS = "consensus_llm_requests"
LLM_REQUEST_DURATION = "consensus_llm_request_duration_seconds"
LLM_TOKENS = "consensus_llm_tokens"
LLM_COST = "consensus_llm_cost_usd"
RUNS_IN_STATUS = "consensus_runs"
IDEMPOTENT_SKIPS = "consensus_idempotent_skips"
SWEEPER_ACTIONS = "consensus_sweeper_actions"
RATE_LIMIT_WAIT = "consensus_llm_rate_limit_wait_seconds"
TENANT_SPEND = "consensus_tenant_spend_usd"
BUDGET_LEFT = "consensus_tenant_budget_left"
OTHER = "other"
"""The ``model`` label of every model outside the configured ones, and the ``tenant`` label
of every tenant the budgets do not name: every label value would be a series of its own."""

METRIC_NAMES: tuple[str, ...] = (
    RUNS_FINISHED,
    RUN_DURATION,
    STEP_DURATION,
    LLM_REQUESTS,
    LLM_REQUEST_DURATION,
    LLM_TOKENS,
    LLM_COST,
    RUNS_IN_STATUS,
    IDEMPOTENT_SKIPS,
    SWEEPER_ACTIONS,
    RATE_LIMIT_WAIT,
    TENANT_SPEND,
    BUDGET_LEFT,
)
"""Family names as ``prometheus_client`` collects them (counters without ``_total``)."""

_RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
_STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
_LLM_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)
"""From a cached short answer to the longest a provider is given (``LLM_TIMEOUT_SECONDS``)."""
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)


def bounded(value: str | None, allowed: Container[str]) -> str:
    """``value`` as a label value: itself when configured, else ``other``."""
    return value if value is not None and value in allowed else OTHER


def step_labels(step: str) -> tuple[str, str]:
    """``(step kind, persona)`` of a step name: ``review_architect`` -> ``("review", "architect")``,
    ``debate_architect`` -> ``("debate", "architect")``.

    Labels carry the kind, not the name, so each persona does not become a new step.
    """
    split = split_persona_step(step)
    return (step, "") if split is None else (split[0].value, split[1])


class PipelineMetrics:
    """Every metric of the pipeline, registered once in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        reg = REGISTRY if registry is None else registry
        self._runs_finished = Counter(
            RUNS_FINISHED,
            "Runs that reached a terminal status.",
            ["status", "decision"],
            registry=reg,
        )
        self._run_duration = Histogram(
            RUN_DURATION,
            "Time from enqueue to a terminal status.",
            ["status"],
            buckets=_RUN_BUCKETS,
            registry=reg,
        )
        self._step_duration = Histogram(
            STEP_DURATION,
            "Time one step attempt took.",
            ["step", "persona", "outcome"],
            buckets=_STEP_BUCKETS,
            registry=reg,
        )
        self._llm_requests = Counter(
            LLM_REQUESTS,
            "LLM HTTP attempts, failed ones included.",
            ["model", "provider", "step", "outcome"],
            registry=reg,
        )
        self._llm_request_duration = Histogram(
            LLM_REQUEST_DURATION,
            "Time one LLM HTTP attempt took, failed ones included.",
            ["model", "provider", "step"],
            buckets=_LLM_BUCKETS,
            registry=reg,
        )
        self._llm_tokens = Counter(
            LLM_TOKENS,
            "Tokens the LLM reported, by kind (input or output).",
            ["model", "step", "kind"],
            registry=reg,
        )
        self._llm_cost = Counter(
            LLM_COST, "Estimated LLM cost in US dollars.", ["model", "step"], registry=reg
        )
        self._runs_in_status = Gauge(
            RUNS_IN_STATUS,
            "Runs currently in each status, as the sweeper last counted them.",
            ["status"],
            multiprocess_mode="mostrecent",
            registry=reg,
        )
        self._idempotent_skips = Counter(
            IDEMPOTENT_SKIPS,
            "Redelivered step messages skipped because the step was done.",
            ["step"],
            registry=reg,
        )
        self._sweeper_actions = Counter(
            SWEEPER_ACTIONS,
            "What the sweeper did (requeued, failed, ...).",
            ["action"],
            registry=reg,
        )
        self._rate_limit_wait = Histogram(
            RATE_LIMIT_WAIT,
            "Time an LLM call spent at the shared rate limit, until it was sent (admitted) "
            "or put back to come later (deferred).",
            ["model", "outcome"],
            buckets=_WAIT_BUCKETS,
            registry=reg,
        )
        self._tenant_spend = Counter(
            TENANT_SPEND,
            "Estimated LLM cost in US dollars by tenant (tenants the budgets name; others: other).",
            ["tenant"],
            registry=reg,
        )
        self._budget_left = Gauge(
            BUDGET_LEFT,
            "What is left of each limit of the budgets' named tenants (USD or tokens), as the "
            "sweeper last counted it.",
            ["tenant", "limit"],
            multiprocess_mode="mostrecent",
            registry=reg,
        )

    def run_finished(self, *, status: str, decision: str | None, seconds: float | None) -> None:
        """Count a run's end; observe its duration when its enqueue time is known."""
        self._runs_finished.labels(status=status, decision=decision or "").inc()
        if seconds is not None:
            # Enqueue and finish times come from different clocks; never go below zero.
            self._run_duration.labels(status=status).observe(max(seconds, 0.0))

    def step_finished(self, *, step: str, outcome: str, seconds: float) -> None:
        """Observe one step attempt; ``outcome`` is completed, failed or retried."""
        kind, persona = step_labels(step)
        self._step_duration.labels(step=kind, persona=persona, outcome=outcome).observe(
            max(seconds, 0.0)
        )

    def llm_calls(
        self,
        records: Iterable[CallRecord],
        *,
        models: Container[str],
        tenant: str | None = None,
        tenants: Container[str] = (),
    ) -> None:
        """Count requests, tokens and cost of LLM attempts made for ``tenant``, and observe
        how long each took.

        A model outside ``models`` (the configured ones) is counted as ``other``, and so is
        a tenant outside ``tenants`` (those the budgets name). Requests and their durations
        also name the provider, one the operator configured: which of several is failing.
        """
        records = list(records)
        if not records:
            return
        spender = self._tenant_spend.labels(tenant=bounded(tenant, tenants))
        for record in records:
            kind, _ = step_labels(record.step)
            model = bounded(record.model, models)
            where = {"model": model, "provider": record.provider, "step": kind}
            self._llm_requests.labels(**where, outcome=record.outcome).inc()
            self._llm_request_duration.labels(**where).observe(max(record.latency_ms, 0.0) / 1000)
            tokens = self._llm_tokens
            tokens.labels(model=model, step=kind, kind="input").inc(record.input_tokens)
            tokens.labels(model=model, step=kind, kind="output").inc(record.output_tokens)
            self._llm_cost.labels(model=model, step=kind).inc(float(record.cost_usd))
            spender.inc(float(record.cost_usd))

    def rate_limit_wait(self, *, model: str, admitted: bool, seconds: float) -> None:
        """Observe one call's time at the rate limit (``model`` already bounded)."""
        outcome = "admitted" if admitted else "deferred"
        self._rate_limit_wait.labels(model=model, outcome=outcome).observe(max(seconds, 0.0))

    def budget_left(self, tenant: str, standings: Sequence[Standing]) -> None:
        """Set what is left of each of the tenant's limits."""
        for standing in standings:
            gauge = self._budget_left.labels(tenant=tenant, limit=standing.limit.value)
            gauge.set(float(standing.left))

    def idempotent_skip(self, *, step: str) -> None:
        """Count a redelivery that found its step already done."""
        self._idempotent_skips.labels(step=step_labels(step)[0]).inc()

    def runs_in_status(self, counts: Mapping[str, int]) -> None:
        """Set the gauge of every status, zero where absent, so a drained status reads 0."""
        for status in RunStatus:
            self._runs_in_status.labels(status=status.value).set(counts.get(status.value, 0))

    def sweeper_action(self, action: str, count: int = 1) -> None:
        """Count what the sweeper did."""
        self._sweeper_actions.labels(action=action).inc(count)


_instance: PipelineMetrics | None = None
_instance_lock = threading.Lock()


def pipeline_metrics() -> PipelineMetrics:
    """The process-wide metrics in the default registry, created on first use.

    Call it only after the worker process has booted (see the module docstring).
    """
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = PipelineMetrics()
        return _instance


def render_metrics(multiprocess_dir: str | None) -> tuple[bytes, str]:
    """The text exposition and its content type: of every process's files, or of this process."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
    from prometheus_client.exposition import choose_encoder

    if multiprocess_dir is None:
        registry = REGISTRY
    else:
        registry = CollectorRegistry()
        # Registers itself in ``registry``; prometheus_client leaves this constructor untyped.
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    # An empty Accept header picks the classic text format, whatever the library's default.
    encoder, content_type = choose_encoder("")
    return encoder(registry), content_type
