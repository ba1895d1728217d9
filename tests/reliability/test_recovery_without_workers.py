"""Recovery does not stop when KEDA scales the workers to zero: the chart runs the sweeper
on a schedule of its own, with the settings and secrets the workers have."""

from __future__ import annotations

from typing import Any

from .conftest import Manifest, Render

SCALED_TO_ZERO = {"keda": {"enabled": True, "minReplicaCount": 0}}


def sweepers(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == "CronJob"]


def secret_refs(container: dict[str, Any]) -> dict[str, Any]:
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_the_sweeper_runs_on_a_schedule_when_workers_scale_to_zero(render: Render) -> None:
    manifests = render(SCALED_TO_ZERO)
    [cron] = sweepers(manifests)
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedule"] == "* * * * *"
    pod: dict[str, Any] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["consensus-engine", "sweep"]
    worker = next(
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("-worker")
    )
    [worker_container] = worker["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == worker_container["envFrom"]
    # The database credential the workers have; no LLM key, for it calls no LLM.
    database = {k: v for k, v in secret_refs(worker_container).items() if k != "OPENAI_API_KEY"}
    assert secret_refs(container) == database


def test_the_schedule_and_the_switch_are_values(render: Render) -> None:
    [cron] = sweepers(render({"sweeper": {"schedule": "*/5 * * * *"}}))
    assert cron["spec"]["schedule"] == "*/5 * * * *"
    assert sweepers(render({"sweeper": {"enabled": False}})) == []
