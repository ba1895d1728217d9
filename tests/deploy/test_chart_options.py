"""The chart's optional features, each rendered on and off: ``helm test`` hooks, Ingress and
HTTPRoute, per-pod options, the image digest, KEDA for the high-priority workers, alert switches
and runbook URLs, the API's disruption budget, and the LLM key of a self-hosted server.

Core objects are validated strictly against the Kubernetes 1.31 schemas (kubernetes-validate,
offline). Its schema set has no Gateway API types, so the HTTPRoute is checked against
``HTTPROUTE_SCHEMA`` below: the fields of gateway.networking.k8s.io/v1 the chart writes, with
the CRD's limits, unknown fields refused.
"""

from __future__ import annotations

import copy
import importlib
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import helm_python as helm
import pytest

from .conftest import CHART_DIR, NAMESPACE, Manifest, Render, by_kind, containers, env_of, one
from .test_chart import DIGEST, KUBE_VERSION, LONG_RUNNING_OPTIONS, POD_OPTIONS, VALUE_SETS

FULLNAME = "ce-consensus-engine"
API = f"{FULLNAME}-api"
WORKERS = (f"{FULLNAME}-worker", f"{FULLNAME}-worker-high")
TEST_PODS = (f"{FULLNAME}-test-api", f"{FULLNAME}-test-worker")
ALERTS_FILE = CHART_DIR / "files" / "alerts.yaml"
# The chart's own labels of each pod, which podLabels must never override.
COMPONENTS = {API: "api", **dict.fromkeys(WORKERS, "worker")}

_NAME = {"type": "string", "minLength": 1, "maxLength": 253}
_HOSTNAME = {
    "type": "string",
    "maxLength": 253,
    "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
HTTPROUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"},
        "kind": {"const": "HTTPRoute"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {"name": _NAME, "labels": _STRING_MAP, "annotations": _STRING_MAP},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["parentRefs", "rules"],
            "properties": {
                "parentRefs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 32,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "group": {"type": "string"},
                            "kind": {"type": "string"},
                            "name": _NAME,
                            "namespace": {"type": "string", "maxLength": 63},
                            "sectionName": {"type": "string", "maxLength": 253},
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        },
                    },
                },
                "hostnames": {"type": "array", "maxItems": 16, "items": _HOSTNAME},
                "rules": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "matches": {
                                "type": "array",
                                "maxItems": 64,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "required": ["type", "value"],
                                            "properties": {
                                                "type": {
                                                    "enum": [
                                                        "Exact",
                                                        "PathPrefix",
                                                        "RegularExpression",
                                                    ]
                                                },
                                                "value": {
                                                    "type": "string",
                                                    "pattern": "^/",
                                                    "maxLength": 1024,
                                                },
                                            },
                                        }
                                    },
                                },
                            },
                            "backendRefs": {
                                "type": "array",
                                "maxItems": 16,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    # A Service backend needs its port (a CEL rule of the CRD).
                                    "required": ["name", "port"],
                                    "properties": {
                                        "name": _NAME,
                                        "port": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": 65535,
                                        },
                                        "weight": {"type": "integer", "minimum": 0},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    """The library has no type information; it is used through one untyped handle."""
    return importlib.import_module("kubernetes_validate")


@pytest.fixture(scope="module")
def jsonschema() -> Any:
    """kubernetes-validate's own JSON Schema library, untyped as well."""
    return importlib.import_module("jsonschema")


@pytest.fixture(scope="module")
def defaults(render: Render) -> list[Manifest]:
    return render()


@pytest.fixture(scope="module")
def exposed(render: Render) -> list[Manifest]:
    return render(VALUE_SETS["exposed"])


@pytest.fixture(scope="module")
def pod_options(render: Render) -> list[Manifest]:
    return render(VALUE_SETS["pod-options"])


def validate_strictly(kubernetes_validate: Any, manifest: Manifest) -> None:
    kubernetes_validate.validate(copy.deepcopy(manifest), KUBE_VERSION, strict=True)


def alert_names() -> list[str]:
    document = helm.values_from_yaml(ALERTS_FILE.read_text())
    return [rule["alert"] for group in document["groups"] for rule in group["rules"]]


def prometheus_rule(render: Render, rule_values: dict[str, Any]) -> Manifest | None:
    values = {"metrics": {"prometheusRule": {"enabled": True, **rule_values}}}
    found = by_kind(render(values), "PrometheusRule")
    return found[0] if found else None


def alerts_of(rule: Manifest) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def pod_template(manifests: list[Manifest], kind: str, name: str) -> dict[str, Any]:
    manifest = one(manifests, kind, name)
    if kind == "CronJob":
        return dict(manifest["spec"]["jobTemplate"]["spec"]["template"])
    return dict(manifest["spec"]["template"])


# -- helm test -------------------------------------------------------------------------------


def test_test_hooks_ask_the_api_and_a_worker_through_their_services(
    defaults: list[Manifest], kubernetes_validate: Any
) -> None:
    api_service = one(defaults, "Service", API)
    worker_service = one(defaults, "Service", f"{FULLNAME}-worker")
    expected = {
        TEST_PODS[0]: f"http://{API}.{NAMESPACE}.svc:{api_service['spec']['ports'][0]['port']}"
        "/ready",
        TEST_PODS[1]: f"http://{FULLNAME}-worker.{NAMESPACE}.svc:8080/readyz",
    }
    assert worker_service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    # The worker Service reaches the workers' named health port.
    for name in WORKERS[:1]:
        template = pod_template(defaults, "Deployment", name)
        assert worker_service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
        ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        assert ports["http"] == 8080
    deployment = one(defaults, "Deployment", API)
    assert api_service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    for name, url in expected.items():
        pod = one(defaults, "Pod", name)
        annotations = pod["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "test"
        assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
        spec = pod["spec"]
        assert spec["restartPolicy"] == "Never"
        assert spec["automountServiceAccountToken"] is False
        (container,) = spec["containers"]
        # The chart's own image, through its entry point's pass-through: no extra image.
        assert (
            container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        )
        assert "env" not in container and "envFrom" not in container  # no settings, no secrets
        assert container["args"][:2] == ["python", "-c"]
        assert container["args"][3:] == [url, "10"]
        assert "urllib.request.urlopen(url, timeout=timeout)" in container["args"][2]
        validate_strictly(kubernetes_validate, pod)


def test_the_test_script_passes_on_200_and_fails_on_503(defaults: list[Manifest]) -> None:
    """The hook's Python, run here against a real HTTP server answering 200 then 503."""
    statuses = iter([200, 503])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(next(statuses))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    (container,) = one(defaults, "Pod", TEST_PODS[0])["spec"]["containers"]
    script = container["args"][2]
    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/ready"
        runs = [
            subprocess.run(
                [sys.executable, "-c", script, url, "5"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            for _ in range(2)
        ]
        server.shutdown()
        thread.join()
    ready, failing = runs
    assert (ready.returncode, ready.stdout.strip()) == (0, f"{url}: 200")
    assert failing.returncode == 1
    assert failing.stderr.strip() == f"{url}: HTTP Error 503: Service Unavailable"


def test_test_hooks_follow_network_policies_and_their_switch(render: Render) -> None:
    closed = render({"networkPolicy": {"enabled": True}})
    # The workers' health port stays closed to the cluster: only the API is tested.
    assert [p["metadata"]["name"] for p in by_kind(closed, "Pod")] == [TEST_PODS[0]]
    assert [s["metadata"]["name"] for s in by_kind(closed, "Service")] == [API]
    off = render({"tests": {"enabled": False}})
    assert by_kind(off, "Pod") == []
    assert [s["metadata"]["name"] for s in by_kind(off, "Service")] == [API]


# -- Ingress and HTTPRoute -------------------------------------------------------------------


def test_ingress_and_http_route_are_off_by_default(defaults: list[Manifest]) -> None:
    assert by_kind(defaults, "Ingress") == []
    assert by_kind(defaults, "HTTPRoute") == []


def test_ingress_routes_every_host_to_the_api_service(
    exposed: list[Manifest], kubernetes_validate: Any
) -> None:
    ingress = one(exposed, "Ingress", API)
    validate_strictly(kubernetes_validate, ingress)
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert spec["tls"] == [{"secretName": "consensus-tls", "hosts": ["consensus.example.com"]}]
    assert [rule["host"] for rule in spec["rules"]] == ["consensus.example.com", "api.example.com"]
    service = one(exposed, "Service", API)
    for rule in spec["rules"]:
        (path,) = rule["http"]["paths"]
        assert (path["path"], path["pathType"]) == ("/", "Prefix")
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_ingress_without_hosts_takes_every_host(render: Render, kubernetes_validate: Any) -> None:
    ingress = one(render({"api": {"ingress": {"enabled": True}}}), "Ingress", API)
    validate_strictly(kubernetes_validate, ingress)
    (rule,) = ingress["spec"]["rules"]
    assert "host" not in rule
    assert "ingressClassName" not in ingress["spec"] and "tls" not in ingress["spec"]


def test_http_route_attaches_the_api_service_to_the_gateway(
    exposed: list[Manifest], jsonschema: Any
) -> None:
    route = one(exposed, "HTTPRoute", API)
    jsonschema.validate(route, HTTPROUTE_SCHEMA)
    spec = route["spec"]
    assert spec["parentRefs"] == [
        {"name": "public", "namespace": "gateway-system", "sectionName": "https"}
    ]
    assert spec["hostnames"] == ["consensus.example.com"]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    service = one(exposed, "Service", API)
    assert rule["backendRefs"] == [
        {"name": service["metadata"]["name"], "port": service["spec"]["ports"][0]["port"]}
    ]


def test_the_http_route_schema_catches_a_bad_route(
    exposed: list[Manifest], jsonschema: Any
) -> None:
    broken = copy.deepcopy(one(exposed, "HTTPRoute", API))
    del broken["spec"]["rules"][0]["backendRefs"][0]["port"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, HTTPROUTE_SCHEMA)


# -- pod options -----------------------------------------------------------------------------


def test_pod_options_are_off_by_default(defaults: list[Manifest]) -> None:
    for name, container in containers(defaults):
        assert "startupProbe" not in container, name
        assert [m["name"] for m in container["volumeMounts"]] == ["tmp"], name
        assert container["image"] == "ghcr.io/consensus-engine/consensus-engine:0.1.0", name
    for manifest in defaults:
        if manifest["kind"] in {"Deployment", "Job", "CronJob"}:
            template = pod_template(defaults, manifest["kind"], manifest["metadata"]["name"])
            assert "priorityClassName" not in template["spec"]
            assert "topologySpreadConstraints" not in template["spec"]
            assert "team" not in template["metadata"]["labels"]


@pytest.mark.parametrize(
    ("kind", "name", "options"),
    [
        ("Deployment", API, LONG_RUNNING_OPTIONS),
        ("Deployment", WORKERS[0], LONG_RUNNING_OPTIONS),
        ("Deployment", WORKERS[1], LONG_RUNNING_OPTIONS),
        ("Job", f"{FULLNAME}-migrate", POD_OPTIONS),
        ("CronJob", f"{FULLNAME}-sweeper", POD_OPTIONS),
    ],
)
def test_pod_options_reach_every_pod_they_are_set_for(
    pod_options: list[Manifest], kind: str, name: str, options: dict[str, Any]
) -> None:
    template = pod_template(pod_options, kind, name)
    labels, spec = template["metadata"]["labels"], template["spec"]
    assert labels["team"] == "consensus"
    # The chart's labels win, so the workload keeps selecting its pods.
    assert labels["app.kubernetes.io/component"] != "not-mine"
    if kind == "Deployment":
        selector = one(pod_options, kind, name)["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
    assert spec["priorityClassName"] == "consensus-high"
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in spec["volumes"]
    assert options["extraVolumes"][0] in spec["volumes"]
    (container,) = spec["containers"]
    assert container["image"] == f"ghcr.io/consensus-engine/consensus-engine@{DIGEST}"
    assert options["extraVolumeMounts"][0] in container["volumeMounts"]
    env = env_of(container)
    for variable in options["extraEnv"]:
        assert env[variable["name"]] == variable
    if "startupProbe" not in options:
        assert "startupProbe" not in container
        return
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    # Filled in: the pods of this workload only (a worker tier does not count the other).
    selector = one(pod_options, kind, name)["spec"]["selector"]["matchLabels"]
    assert spread["labelSelector"] == {"matchLabels": selector}
    probe = container["startupProbe"]
    path = "/health" if name == API else "/healthz"
    assert probe["httpGet"] == {"path": path, "port": "http"}
    assert (probe["failureThreshold"], probe["timeoutSeconds"]) == (40, 3)
    assert "enabled" not in probe


def test_a_given_label_selector_is_kept(render: Render) -> None:
    own = {"matchLabels": {"app.kubernetes.io/part-of": "consensus-engine"}}
    spread = {**LONG_RUNNING_OPTIONS["topologySpreadConstraints"][0], "labelSelector": own}
    manifests = render({"api": {"topologySpreadConstraints": [spread]}})
    (constraint,) = pod_template(manifests, "Deployment", API)["spec"]["topologySpreadConstraints"]
    assert constraint["labelSelector"] == own


def test_the_test_hooks_use_the_digest_too(pod_options: list[Manifest]) -> None:
    images = {name: c["image"] for name, c in containers(pod_options)}
    assert {name.split("/")[0] for name in images} >= set(TEST_PODS)
    assert set(images.values()) == {f"ghcr.io/consensus-engine/consensus-engine@{DIGEST}"}


# -- KEDA for the high-priority workers ------------------------------------------------------


def test_keda_scales_the_high_priority_workers_on_their_own_subscription(
    pod_options: list[Manifest],
) -> None:
    (scaled,) = by_kind(pod_options, "ScaledObject")
    (auth,) = by_kind(pod_options, "TriggerAuthentication")
    assert scaled["spec"]["scaleTargetRef"]["name"] == WORKERS[1]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 4)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert trigger["metadata"]["subscriptionName"] == (
        "projects/my-gcp-project/subscriptions/consensus-engine-jobs-high-sub"
    )
    assert trigger["metadata"]["value"] == "5"
    # KEDA owns the high-priority replica count; the standard workers keep theirs.
    assert "replicas" not in one(pod_options, "Deployment", WORKERS[1])["spec"]
    assert one(pod_options, "Deployment", WORKERS[0])["spec"]["replicas"] == 2


def test_both_tiers_scaled_share_one_trigger_authentication(render: Render) -> None:
    manifests = render(
        {
            "keda": {"enabled": True, "highPriority": {"enabled": True}},
            "worker": {"highPriority": {"enabled": True}},
        }
    )
    targets = {s["spec"]["scaleTargetRef"]["name"] for s in by_kind(manifests, "ScaledObject")}
    assert targets == set(WORKERS)
    assert len(by_kind(manifests, "TriggerAuthentication")) == 1
    for name in WORKERS:
        assert "replicas" not in one(manifests, "Deployment", name)["spec"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"keda": {"highPriority": {"enabled": True}}}, "needs worker.highPriority.enabled"),
        (
            {
                "worker": {"highPriority": {"enabled": True}},
                "keda": {"highPriority": {"enabled": True, "minReplicaCount": 6}},
            },
            r"keda\.highPriority\.minReplicaCount must not exceed",
        ),
    ],
)
def test_high_priority_scaling_refuses_what_cannot_work(
    render: Render, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


# -- alerts ----------------------------------------------------------------------------------


def test_every_alert_links_its_runbook(render: Render) -> None:
    rule = prometheus_rule(render, {})
    assert rule is not None
    found = alerts_of(rule)
    assert list(found) == alert_names()
    base = "https://github.com/consensus-engine/consensus-engine/blob/main/helm/consensus-engine/"
    for name, alert in found.items():
        assert alert["annotations"]["runbook_url"] == f"{base}README.md#{name.lower()}"
        assert alert["annotations"]["runbook"], name
    mine = prometheus_rule(render, {"runbookUrl": "https://wiki.example.com/runbooks/"})
    assert mine is not None
    for name, alert in alerts_of(mine).items():
        assert (
            alert["annotations"]["runbook_url"]
            == f"https://wiki.example.com/runbooks/{name.lower()}"
        )


def test_alerts_can_be_switched_off_one_by_one(render: Render) -> None:
    off = {
        "ConsensusEngineSpendSurge": {"enabled": False},
        "ConsensusEngineApiDown": {"enabled": False},
    }
    rule = prometheus_rule(render, {"rules": off})
    assert rule is not None
    assert list(alerts_of(rule)) == [name for name in alert_names() if name not in off]
    kept_on = prometheus_rule(render, {"rules": {"ConsensusEngineSpendSurge": {"enabled": True}}})
    assert kept_on is not None and list(alerts_of(kept_on)) == alert_names()
    # A group left without alerts goes, and with none at all so does the PrometheusRule.
    api_group = {"ConsensusEngineApi5xxRatio": {"enabled": False}}
    rule = prometheus_rule(render, {"rules": api_group})
    assert rule is not None
    assert "consensus-engine.api" not in {g["name"] for g in rule["spec"]["groups"]}
    everything_off = {name: {"enabled": False} for name in alert_names()}
    assert prometheus_rule(render, {"rules": everything_off}) is None


def test_the_schema_knows_every_alert_and_only_those(helm_chart: helm.Chart) -> None:
    schema = helm_chart.schema
    assert schema is not None
    rule_schema = schema["properties"]["metrics"]["properties"]["prometheusRule"]
    assert list(rule_schema["properties"]["rules"]["properties"]) == alert_names()


def test_the_scrape_jobs_match_the_alerts_job_selectors(render: Render) -> None:
    """The ServiceMonitor names the API's job <fullname>-api, the PodMonitor the workers'
    <namespace>/<fullname>-worker: what ApiDown's and WorkerDown's `up` selectors expect
    (PromQL regexes match whole values, as fullmatch does)."""
    manifests = render(
        {"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}}
    )
    monitor = one(manifests, "ServiceMonitor", API)
    service = one(manifests, "Service", f"{API}-metrics")
    api_job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    worker_job = f"{NAMESPACE}/{one(manifests, 'PodMonitor', WORKERS[0])['metadata']['name']}"
    document = helm.values_from_yaml(ALERTS_FILE.read_text())
    expressions = {r["alert"]: r["expr"] for g in document["groups"] for r in g["rules"]}
    for alert, job in (
        ("ConsensusEngineApiDown", api_job),
        ("ConsensusEngineWorkerDown", worker_job),
    ):
        (selector,) = re.findall(r'job=~"([^"]+)"', expressions[alert])
        assert re.fullmatch(selector, job), (alert, selector, job)
    assert not re.fullmatch(
        re.findall(r'job=~"([^"]+)"', expressions["ConsensusEngineApiDown"])[0], worker_job
    )


# -- the API's disruption budget -------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "budget"),
    [
        ({}, True),
        ({"autoscaling": {"enabled": False}, "replicas": 2}, True),
        ({"autoscaling": {"enabled": False}, "replicas": 1}, False),
        ({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 5}}, False),
        ({"autoscaling": {"enabled": True, "minReplicas": 3}, "replicas": 1}, True),
        ({"podDisruptionBudget": {"enabled": False}}, False),
    ],
    ids=["defaults", "two-replicas", "one-replica", "autoscaled-from-one", "autoscaled", "off"],
)
def test_no_api_budget_where_one_replica_would_block_drains(
    render: Render, kubernetes_validate: Any, api: dict[str, Any], budget: bool
) -> None:
    manifests = render({"api": api})
    budgets = {p["metadata"]["name"]: p for p in by_kind(manifests, "PodDisruptionBudget")}
    assert (API in budgets) is budget
    assert WORKERS[0] in budgets  # the workers' maxUnavailable never blocks a drain
    for pdb in budgets.values():
        validate_strictly(kubernetes_validate, pdb)


# -- the LLM key -----------------------------------------------------------------------------


def test_the_llm_key_is_optional_only_with_a_self_hosted_server(
    defaults: list[Manifest], exposed: list[Manifest]
) -> None:
    for manifests, optional in ((defaults, None), (exposed, True)):
        seen = 0
        for name, container in containers(manifests):
            key = env_of(container).get("OPENAI_API_KEY")
            if key is None:
                continue
            seen += 1
            assert key["valueFrom"]["secretKeyRef"].get("optional") is optional, name
            assert key["valueFrom"]["secretKeyRef"]["key"] == "OPENAI_API_KEY", name
        assert seen == 2  # the API and the workers, nothing else


# -- chart metadata --------------------------------------------------------------------------


def test_chart_metadata_names_its_home_and_sources(helm_chart: helm.Chart) -> None:
    metadata = helm_chart.metadata
    assert metadata["version"] == "0.2.0"
    assert metadata["home"] == "https://github.com/consensus-engine/consensus-engine"
    assert metadata["home"] in metadata["sources"]
    assert all(source.startswith("https://") for source in metadata["sources"])


def test_the_api_serves_the_web_app_and_lists_cross_origin_sites(render: Render) -> None:
    def config(values: dict[str, Any] | None = None) -> dict[str, str]:
        data: dict[str, str] = one(render(values), "ConfigMap", "ce-consensus-engine")["data"]
        return data

    default = config()
    assert default["WEB_APP_ENABLED"] == "true"
    assert "CORS_ORIGINS" not in default
    chosen = config(
        {
            "config": {
                "webApp": {"enabled": False},
                "corsOrigins": ["https://app.example.com", "http://localhost:5173"],
            }
        }
    )
    assert chosen["WEB_APP_ENABLED"] == "false"
    assert chosen["CORS_ORIGINS"] == "https://app.example.com,http://localhost:5173"
