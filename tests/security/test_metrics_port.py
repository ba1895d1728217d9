"""The API's metrics are not on its public port, which anyone who reaches the API can call,
but on a port of their own (``API_METRICS_PORT``) that a deployment keeps inside the cluster.
Over real HTTP, against the real API."""

from __future__ import annotations

import pytest

from consensus_engine.api.app import create_app
from consensus_engine.devtools.loopback import LOOPBACK, BackgroundServer, http_request
from consensus_engine.devtools.process import free_port
from consensus_engine.settings import Settings

from .conftest import ApiFactory

REQUESTS = "consensus_api_requests_total"


def test_the_public_port_does_not_serve_metrics(make_api: ApiFactory) -> None:
    api = make_api(api={"API_DOCS_ENABLED": True})
    assert api.anonymous.get("/metrics").status == 404
    assert api.acme.get("/metrics").status == 404  # not with a key either
    assert "/metrics" not in api.anonymous.get("/openapi.json").json()["paths"]


def test_the_metrics_port_serves_the_api_metrics(make_api: ApiFactory) -> None:
    api = make_api()
    assert api.acme.get("/v1/runs").status == 200
    metrics = http_request(api.metrics_url)
    assert metrics.status == 200
    counted = f'{REQUESTS}{{method="GET",route="/v1/runs",status="200"}} 1.0'
    assert counted in metrics.body.decode(), metrics.body[:2000]


def test_the_metrics_port_closes_with_the_api(make_api: ApiFactory) -> None:
    port = free_port()
    harness = make_api().settings.model_dump()
    settings = Settings.model_validate({**harness, "api_metrics_port": port})
    url = f"http://{LOOPBACK}:{port}/metrics"
    with BackgroundServer(create_app(settings)):
        assert http_request(url).status == 200
    with pytest.raises(OSError):
        http_request(url, timeout=2)
