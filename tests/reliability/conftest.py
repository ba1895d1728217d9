"""The reliability suite renders the Helm chart as the deployment tests do."""

from deploy.conftest import Manifest, Render, helm_chart, render

__all__ = ["Manifest", "Render", "helm_chart", "render"]
