"""Prometheus metrics of the pipeline: runs, steps, LLM calls, idempotent skips, the sweeper.

``prometheus_client`` decides at *its* import whether it runs in multiprocess
mode (it reads ``PROMETHEUS_MULTIPROC_DIR`` then), and Dramatiq's Prometheus
middleware sets that variable in ``after_process_boot``, after the worker has
imported our modules. So this module imports ``prometheus_client`` only inside
functions: nothing may touch it before the worker process has booted.
"""

from __future__ import annotations

import threading
from collections.abc import Container, Iterable, Mapping
from typing import TYPE_CHECKING

from consensus_engine.domain.runs import RunStatus, persona_of_step

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from consensus_engine.llm.records import CallRecord

RUNS_FINISHED = "consensus_runs_finished"
RUN_DURATION = "consensus_run_duration_seconds"
STEP_DURATION = "consensus_step_duration_seconds"
LLM_REQUESTS = "consensus_llm_requests"
LLM_TOKENS = "consensus_llm_tokens"
LLM_COST = "consensus_llm_cost_usd"
RUNS_IN_STATUS = "consensus_runs"
IDEMPOTENT_SKIPS = "consensus_idempotent_skips"
SWEEPER_ACTIONS = "consensus_sweeper_actions"
OTHER_MODEL = "other"
"""The ``model`` label of every model outside the configured ones."""

METRIC_NAMES: tuple[str, ...] = (
    RUNS_FINISHED,
    RUN_DURATION,
    STEP_DURATION,
    LLM_REQUESTS,
    LLM_TOKENS,
    LLM_COST,
    RUNS_IN_STATUS,
    IDEMPOTENT_SKIPS,
    SWEEPER_ACTIONS,
)
"""Family names as ``prometheus_client`` collects them (counters without ``_total``)."""

_RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
_STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)


def step_labels(step: str) -> tuple[str, str]:
    """``(step kind, persona)`` of a step name: ``review_architect`` -> ``("review", "architect")``.

    Labels carry the kind, not the name, so each persona does not become a new step.
    """
    persona = persona_of_step(step)
    return ("review", persona) if persona is not None else (step, "")


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
            ["model", "step", "outcome"],
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

    def llm_calls(self, records: Iterable[CallRecord], *, models: Container[str]) -> None:
        """Count requests, tokens and cost of LLM attempts.

        A model outside ``models`` (the configured ones) is counted as ``other``: a request
        may name any model, and every label value would be a series of its own.
        """
        for record in records:
            kind, _ = step_labels(record.step)
            model = record.model if record.model in models else OTHER_MODEL
            self._llm_requests.labels(model=model, step=kind, outcome=record.outcome).inc()
            tokens = self._llm_tokens
            tokens.labels(model=model, step=kind, kind="input").inc(record.input_tokens)
            tokens.labels(model=model, step=kind, kind="output").inc(record.output_tokens)
            self._llm_cost.labels(model=model, step=kind).inc(float(record.cost_usd))

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
