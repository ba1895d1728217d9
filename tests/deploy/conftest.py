"""Fixtures of the deployment checks: the Helm chart loaded and rendered in-process, and the
helpers that find objects, pods and containers in a render."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "consensus-engine"
RELEASE = "ce"
NAMESPACE = "consensus"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]

_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_TEMPLATED = {"Deployment", "Job"}


def split_manifests(rendered: dict[str, str]) -> list[Manifest]:
    """Every object of a render, parsed with Helm's own YAML reader, NOTES.txt left out."""
    manifests: list[Manifest] = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in _DOCUMENT_SEPARATOR.split(text):
            if not document.strip():
                continue
            parsed = helm.values_from_yaml(document)
            if parsed:
                manifests.append(parsed)
    return manifests


@pytest.fixture(scope="session")
def helm_chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as chart:
        yield chart


@pytest.fixture(scope="session")
def render(helm_chart: helm.Chart) -> Render:
    """Render the chart as an install of release ``ce`` in namespace ``consensus``."""

    def _render(values: dict[str, Any] | None = None) -> list[Manifest]:
        rendered = helm_chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        return split_manifests(rendered)

    return _render


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in by_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs(
    manifests: list[Manifest], *, tests: bool = True
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(object name, pod spec)`` of every pod the render makes: workloads, CronJobs and,
    unless ``tests`` is false, the bare Pods of ``helm test`` (which read no settings)."""
    for manifest in manifests:
        if manifest["kind"] in _TEMPLATED:
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]
        elif manifest["kind"] == "CronJob":
            job = manifest["spec"]["jobTemplate"]["spec"]
            yield manifest["metadata"]["name"], job["template"]["spec"]
        elif manifest["kind"] == "Pod" and tests:
            yield manifest["metadata"]["name"], manifest["spec"]


def containers(
    manifests: list[Manifest], *, tests: bool = True
) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in pod_specs(manifests, tests=tests):
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield f"{name}/{container['name']}", container


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}
