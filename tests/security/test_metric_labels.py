"""Tenants cannot create Prometheus series: a model other than EXPAND_MODEL and
REVIEW_MODEL is counted under ``other``, not as a label value of its own, even where the
catalogue allows many. Real API, worker, emulator and LLM."""

from __future__ import annotations

import json
import uuid

from prometheus_client.parser import text_string_to_metric_families

from .conftest import ApiFactory

IDEA = "Let people book a bike repair slot online and get a text when it is ready."


def test_made_up_model_names_do_not_become_label_values(make_api: ApiFactory) -> None:
    made_up = [f"model-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    catalogue: dict[str, dict[str, bool]] = {"gpt-4.1-mini": {}}
    catalogue |= {model: {"free": True} for model in made_up}
    api = make_api(env={"MODEL_CATALOGUE_JSON": json.dumps(catalogue)})
    worker = api.stack.start_worker()
    runs = []
    for model in made_up:
        body = {"idea": IDEA, "expand_model": model, "review_model": model}
        response = api.acme.post("/v1/runs", body)
        assert response.status == 202, response.body
        runs.append(response.json()["run_id"])
    for run_id in runs:
        assert api.stack.wait_for(uuid.UUID(run_id)).status.value == "completed"

    status, metrics = worker.get("/metrics", port=worker.metrics_port)
    assert status == 200, metrics
    models = {
        sample.labels["model"]
        for family in text_string_to_metric_families(metrics.decode())
        for sample in family.samples
        if "model" in sample.labels
    }
    settings = api.stack.settings
    assert models, "the worker counted no LLM call"
    assert models <= {settings.expand_model, settings.review_model, "other"}, models
    assert "other" in models
