"""The security suite drives the real API (over HTTP) as the API tests do, and renders the
Helm chart as the deployment tests do."""

from api.conftest import ApiFactory, ApiHarness, make_api
from deploy.conftest import helm_chart, render

__all__ = ["ApiFactory", "ApiHarness", "helm_chart", "make_api", "render"]
