"""Fixtures of the deployment checks: the Helm chart loaded and rendered in-process."""

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
