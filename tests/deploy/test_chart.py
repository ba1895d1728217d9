"""The Helm chart: lint, render with several value sets, check what matters, validate offline.

Everything runs in-process: Helm 4 as a library (helm-python-sdk) renders the chart and
kubernetes-validate checks each core-API object against the Kubernetes 1.31 schemas, strictly
(unknown fields fail).
"""

from __future__ import annotations

import copy
import importlib
import json
from typing import Any

import helm_python as helm
import pytest

from .conftest import (
    CHART_DIR,
    NAMESPACE,
    Manifest,
    Render,
    by_kind,
    containers,
    env_of,
    one,
    pod_specs,
)

KUBE_VERSION = "1.31.0"
SECRET_ENV = {"OPENAI_API_KEY", "API_KEYS", "API_KEY", "DB_PASSWORD", "DATABASE_URL"}
CRD_KINDS = {
    "ScaledObject",
    "TriggerAuthentication",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
    "HTTPRoute",
}

IAM_SA = "ce-runner@proj-a.iam.gserviceaccount.com"
DIGEST = "sha256:" + "0123456789abcdef" * 4
ZONE_SPREAD = {
    "maxSkew": 1,
    "topologyKey": "topology.kubernetes.io/zone",
    "whenUnsatisfiable": "ScheduleAnyway",
}
CA_VOLUME = {"name": "ca", "configMap": {"name": "corporate-ca"}}
CA_MOUNT = {"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}
# Every per-pod option at once, for the API, both worker tiers, the migration and the sweeper.
POD_OPTIONS: dict[str, Any] = {
    "podLabels": {"team": "consensus", "app.kubernetes.io/component": "not-mine"},
    "priorityClassName": "consensus-high",
    "extraEnv": [
        {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
        {"name": "SSL_CERT_DIR", "value": "/etc/ssl/corporate"},
    ],
    "extraVolumes": [CA_VOLUME],
    "extraVolumeMounts": [CA_MOUNT],
}
LONG_RUNNING_OPTIONS: dict[str, Any] = {
    **POD_OPTIONS,
    "topologySpreadConstraints": [ZONE_SPREAD],
    "startupProbe": {
        "enabled": True,
        "initialDelaySeconds": 0,
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 40,
    },
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "keda": {"keda": {"enabled": True, "value": 25, "minReplicaCount": 2, "maxReplicaCount": 40}},
    "cloudsql-iam": {
        "serviceAccount": {"gcpServiceAccount": IAM_SA},
        "config": {"pubsub": {"projectId": "proj-a"}},
        "database": {"mode": "cloudSqlIam", "instanceConnectionName": "proj-a:europe-west1:ce-db"},
    },
    "password-db": {
        "database": {
            "mode": "cloudSqlPassword",
            "instanceConnectionName": "proj-a:europe-west1:ce-db",
            "user": "consensus_app",
        },
        "existingSecret": {"name": "ce-secrets", "dbPasswordKey": "db-password"},
    },
    "database-url": {
        "serviceAccount": {"gcpServiceAccount": ""},
        "database": {"mode": "url"},
    },
    "exposed": {
        "api": {
            "replicas": 1,
            "autoscaling": {"enabled": False},
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                "hosts": ["consensus.example.com", "api.example.com"],
                "tls": [{"secretName": "consensus-tls", "hosts": ["consensus.example.com"]}],
            },
            "httpRoute": {
                "enabled": True,
                "parentRefs": [
                    {"name": "public", "namespace": "gateway-system", "sectionName": "https"}
                ],
                "hostnames": ["consensus.example.com"],
                "path": "/v1",
            },
        },
        "config": {"llm": {"baseUrl": "http://vllm.llm.svc:8000/v1"}},
    },
    "pod-options": {
        "image": {"digest": DIGEST},
        "api": LONG_RUNNING_OPTIONS,
        "worker": {**LONG_RUNNING_OPTIONS, "highPriority": {"enabled": True}},
        "migrations": POD_OPTIONS,
        "sweeper": POD_OPTIONS,
        "keda": {"highPriority": {"enabled": True, "minReplicaCount": 0, "maxReplicaCount": 4}},
    },
    "everything-on": {
        "keda": {"enabled": True},
        "worker": {"highPriority": {"enabled": True, "replicas": 3, "processes": 1, "threads": 4}},
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "podMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "dashboard": {"enabled": True, "folder": "Consensus"},
        },
    },
}


# -- helpers ---------------------------------------------------------------------------------


def config_data(manifests: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = one(manifests, "ConfigMap", "ce-consensus-engine")["data"]
    return data


def worker(manifests: list[Manifest], name: str = "ce-consensus-engine-worker") -> Manifest:
    return one(manifests, "Deployment", name)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renders(render: Render) -> dict[str, list[Manifest]]:
    return {label: render(values) for label, values in VALUE_SETS.items()}


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    """The library has no type information; it is used through one untyped handle."""
    return importlib.import_module("kubernetes_validate")


# -- lint and schema -------------------------------------------------------------------------


def test_lint_is_clean_with_default_values() -> None:
    report = helm.lint(CHART_DIR, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert report["total_charts_linted"] == 1
    assert all(message["severity"] < 2 for message in report["messages"]), report["messages"]


@pytest.mark.parametrize("label", list(VALUE_SETS))
def test_lint_is_clean_with_every_value_set(label: str) -> None:
    report = helm.lint(CHART_DIR, VALUE_SETS[label], namespace=NAMESPACE)
    assert report["errors"] == []


@pytest.mark.parametrize(
    "values",
    [
        {"worker": {"replicas": "three"}},
        {"workers": {"replicas": 3}},
        {"database": {"mode": "sqlite"}},
        {"config": {"extra": {"OPENAI_API_KEY": "sk-literal"}}},
        {"securityContext": {"readOnlyRootFilesystem": False}},
        {"api": {"extraEnv": [{"name": "OPENAI_API_KEY", "value": "sk-literal"}]}},
        {"worker": {"extraEnv": [{"value": "no name"}]}},
        {"image": {"digest": "latest"}},
        {"api": {"ingress": {"enabled": True, "pathType": "Regex"}}},
        {"api": {"httpRoute": {"enabled": True}}},
        {"metrics": {"prometheusRule": {"rules": {"ConsensusEngineTypo": {"enabled": False}}}}},
        {"api": {"topologySpreadConstraints": [{"maxSkew": 1}]}},
        {"worker": {"podLabels": {"team": "not a label value"}}},
        {"config": {"corsOrigins": ["*"]}},
        {"config": {"corsOrigins": ["https://app.example.com/path"]}},
    ],
    ids=[
        "replicas-string",
        "typo-top-level-key",
        "unknown-db-mode",
        "secret-in-config",
        "rw-rootfs",
        "secret-in-extra-env",
        "extra-env-without-name",
        "digest-not-a-digest",
        "ingress-path-type",
        "http-route-without-gateway",
        "unknown-alert",
        "spread-without-topology-key",
        "label-value",
        "cors-any-origin",
        "cors-origin-with-path",
    ],
)
def test_schema_rejects_bad_values(
    helm_chart: helm.Chart, render: Render, values: dict[str, Any]
) -> None:
    with pytest.raises(helm.HelmValuesError):
        helm_chart.validate_schema(values)
    with pytest.raises(helm.HelmError):
        render(values)
    assert helm.lint(CHART_DIR, values)["errors"], "lint accepted bad values"


def test_schema_accepts_every_value_set(helm_chart: helm.Chart) -> None:
    for values in VALUE_SETS.values():
        helm_chart.validate_schema(values)


def test_values_file_and_schema_cover_the_same_top_level_keys(helm_chart: helm.Chart) -> None:
    schema = helm_chart.schema
    assert schema is not None and schema["additionalProperties"] is False
    assert set(helm_chart.values) <= set(schema["properties"])


def test_chart_metadata(helm_chart: helm.Chart) -> None:
    metadata = helm_chart.metadata
    assert metadata["apiVersion"] == "v2"
    assert metadata["appVersion"]


# -- facts on the rendered objects -----------------------------------------------------------


def test_default_render_has_the_expected_objects(renders: dict[str, list[Manifest]]) -> None:
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in renders["defaults"])
    assert kinds == sorted(
        [
            ("ConfigMap", "ce-consensus-engine"),
            ("ConfigMap", "ce-consensus-engine-migrate"),
            ("CronJob", "ce-consensus-engine-sweeper"),
            ("Deployment", "ce-consensus-engine-api"),
            ("Deployment", "ce-consensus-engine-worker"),
            ("HorizontalPodAutoscaler", "ce-consensus-engine-api"),
            ("Job", "ce-consensus-engine-migrate"),
            ("PodDisruptionBudget", "ce-consensus-engine-api"),
            ("PodDisruptionBudget", "ce-consensus-engine-worker"),
            ("Service", "ce-consensus-engine-api"),
            ("ServiceAccount", "ce-consensus-engine-api"),
            ("ServiceAccount", "ce-consensus-engine-migrate"),
            ("ServiceAccount", "ce-consensus-engine-sweeper"),
            ("ServiceAccount", "ce-consensus-engine-worker"),
            # helm test: the readiness hooks, and the workers' health port they ask
            ("Pod", "ce-consensus-engine-test-api"),
            ("Pod", "ce-consensus-engine-test-worker"),
            ("Service", "ce-consensus-engine-worker"),
        ]
    )
    hpa = one(renders["defaults"], "HorizontalPodAutoscaler", "ce-consensus-engine-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ce-consensus-engine-api"
    # the HPA owns the API's replica count
    assert (
        "replicas" not in one(renders["defaults"], "Deployment", "ce-consensus-engine-api")["spec"]
    )


@pytest.mark.parametrize(("shutdown", "margin"), [(60, 30), (300, 1), (3600, 600)])
def test_worker_grace_period_outlasts_the_shutdown_timeout(
    render: Render, shutdown: int, margin: int
) -> None:
    manifests = render(
        {"worker": {"shutdownTimeoutSeconds": shutdown, "terminationGraceMarginSeconds": margin}}
    )
    grace = worker(manifests)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    configured = int(config_data(manifests)["WORKER_SHUTDOWN_TIMEOUT_SECONDS"])
    assert configured == shutdown
    assert grace == shutdown + margin
    assert grace > configured


def test_worker_probes_ports_and_arguments(renders: dict[str, list[Manifest]]) -> None:
    deployment = worker(renders["defaults"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "metrics": 9191}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    data = config_data(renders["defaults"])
    assert (data["WORKER_HTTP_PORT"], data["WORKER_METRICS_PORT"]) == ("8080", "9191")


def test_api_probes_and_service(renders: dict[str, list[Manifest]]) -> None:
    api = one(renders["defaults"], "Deployment", "ce-consensus-engine-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["api"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "metrics": 9190}
    data = config_data(renders["defaults"])
    assert (data["API_PORT"], data["API_METRICS_PORT"]) == ("8000", "9190")
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    service = one(renders["defaults"], "Service", "ce-consensus-engine-api")
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]  # no metrics


def test_api_metrics_port_must_differ_from_its_port(render: Render) -> None:
    with pytest.raises(helm.HelmError, match=r"must differ from api\.port"):
        render({"api": {"metricsPort": 8000}})


def test_worker_sizing_comes_from_values(render: Render) -> None:
    manifests = render({"worker": {"replicas": 5, "processes": 3, "threads": 12}})
    deployment = worker(manifests)
    assert deployment["spec"]["replicas"] == 5
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WORKER_PROCESSES"] == {"name": "WORKER_PROCESSES", "value": "3"}
    assert env["WORKER_MAX_CONCURRENCY"] == {"name": "WORKER_MAX_CONCURRENCY", "value": "12"}


def test_scrape_annotations(renders: dict[str, list[Manifest]]) -> None:
    manifests = renders["everything-on"]
    expected = {
        "ce-consensus-engine-api": "9190",
        "ce-consensus-engine-worker": "9191",
        "ce-consensus-engine-worker-high": "9191",
    }
    for name, port in expected.items():
        annotations = one(manifests, "Deployment", name)["spec"]["template"]["metadata"][
            "annotations"
        ]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == port
        assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("label", list(VALUE_SETS))
def test_every_container_is_bounded_and_locked_down(
    renders: dict[str, list[Manifest]], label: str
) -> None:
    manifests = renders[label]
    seen = 0
    for name, spec in pod_specs(manifests):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        tmp_volumes = [v for v in spec["volumes"] if v["name"] == "tmp"]
        assert tmp_volumes and "emptyDir" in tmp_volumes[0], name
    for name, container in containers(manifests):
        seen += 1
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) >= {"cpu", "memory"}, name
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name
    assert seen >= 3


@pytest.mark.parametrize("label", list(VALUE_SETS))
def test_secrets_only_by_reference(renders: dict[str, list[Manifest]], label: str) -> None:
    manifests = renders[label]
    secret_name = (
        VALUE_SETS[label].get("existingSecret", {}).get("name", "consensus-engine-secrets")
    )
    assert not by_kind(manifests, "Secret")
    for config_map in by_kind(manifests, "ConfigMap"):
        assert not SECRET_ENV & set(config_map.get("data", {})), config_map["metadata"]["name"]
    for name, container in containers(manifests):
        env = env_of(container)
        for variable in SECRET_ENV & set(env):
            assert "value" not in env[variable], f"{name}: {variable} is a literal"
            assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == secret_name, name


def test_migration_job_is_a_hook(renders: dict[str, list[Manifest]]) -> None:
    manifests = renders["defaults"]
    job = one(manifests, "Job", "ce-consensus-engine-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["args"] == ["migrate"]
    # What the hook reads exists before it runs (hooks with a lower weight), with the same data.
    config_name = pod["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    hook_config = one(manifests, "ConfigMap", config_name)
    account = one(manifests, "ServiceAccount", pod["serviceAccountName"])
    for prerequisite in (hook_config, account):
        assert prerequisite["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(prerequisite["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            annotations["helm.sh/hook-weight"]
        )
    assert hook_config["data"] == config_data(manifests)
    api_account = one(manifests, "ServiceAccount", "ce-consensus-engine-api")
    assert (
        account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        == (api_account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"])
    )
    worker_env = env_of(worker(manifests)["spec"]["template"]["spec"]["containers"][0])
    job_env = env_of(pod["containers"][0])
    # The database credential the worker has, and no other secret (no LLM key, no API keys).
    database = SECRET_ENV - {"OPENAI_API_KEY", "API_KEYS"}
    assert {k: v for k, v in worker_env.items() if k in database} == job_env


def test_migration_job_uses_an_existing_service_account_directly(render: Render) -> None:
    manifests = render({"serviceAccount": {"create": False, "name": "ce-wi"}})
    assert not by_kind(manifests, "ServiceAccount")
    job = one(manifests, "Job", "ce-consensus-engine-migrate")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "ce-wi"
    assert worker(manifests)["spec"]["template"]["spec"]["serviceAccountName"] == "ce-wi"


def test_keda_only_when_enabled(renders: dict[str, list[Manifest]]) -> None:
    for label in ("defaults", "cloudsql-iam", "password-db", "database-url"):
        assert not by_kind(renders[label], "ScaledObject"), label
        assert not by_kind(renders[label], "TriggerAuthentication"), label
        assert worker(renders[label])["spec"]["replicas"] == 2
    manifests = renders["keda"]
    (scaled,) = by_kind(manifests, "ScaledObject")
    (auth,) = by_kind(manifests, "TriggerAuthentication")
    assert scaled["apiVersion"] == auth["apiVersion"] == "keda.sh/v1alpha1"
    assert auth["spec"]["podIdentity"] == {"provider": "gcp"}
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "ce-consensus-engine-worker"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 40)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "gcp-pubsub"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert trigger["metadata"]["mode"] == "SubscriptionSize"
    assert trigger["metadata"]["value"] == "25"
    assert trigger["metadata"]["subscriptionName"] == (
        "projects/my-gcp-project/subscriptions/consensus-engine-jobs-sub"
    )
    # KEDA owns the replica count
    assert "replicas" not in worker(manifests)["spec"]


def test_service_accounts_carry_workload_identity(renders: dict[str, list[Manifest]]) -> None:
    for _, spec in pod_specs(renders["cloudsql-iam"], tests=False):
        account = one(renders["cloudsql-iam"], "ServiceAccount", spec["serviceAccountName"])
        assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == IAM_SA
    for plain in by_kind(renders["database-url"], "ServiceAccount"):
        assert "iam.gke.io/gcp-service-account" not in plain["metadata"].get("annotations", {})


def test_a_role_can_act_as_its_own_google_service_account(render: Render) -> None:
    own = "ce-migrate@proj-a.iam.gserviceaccount.com"
    values = copy.deepcopy(VALUE_SETS["cloudsql-iam"])
    values["serviceAccount"]["migrate"] = {"gcpServiceAccount": own, "annotations": {"a": "b"}}
    manifests = render(values)
    accounts = {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m["metadata"]["annotations"]
        for m in by_kind(manifests, "ServiceAccount")
    }
    assert accounts["migrate"]["iam.gke.io/gcp-service-account"] == own
    assert accounts["migrate"]["a"] == "b"
    for role in ("api", "worker", "sweeper"):
        assert accounts[role]["iam.gke.io/gcp-service-account"] == IAM_SA, role
        assert "a" not in accounts[role], role
    # Cloud SQL IAM logs the hook in as its own account's user; the others keep the shared one.
    assert config_data(manifests)["DB_USER"] == "ce-runner@proj-a.iam"
    job = one(manifests, "Job", "ce-consensus-engine-migrate")["spec"]["template"]["spec"]
    assert env_of(job["containers"][0])["DB_USER"]["value"] == "ce-migrate@proj-a.iam"
    assert "DB_USER" not in env_of(worker(manifests)["spec"]["template"]["spec"]["containers"][0])


def test_cloud_sql_connector_with_iam(renders: dict[str, list[Manifest]]) -> None:
    manifests = renders["cloudsql-iam"]
    data = config_data(manifests)
    assert data["USE_CLOUD_SQL_CONNECTOR"] == "true"
    assert data["DB_IAM_AUTH"] == "true"
    assert data["DB_INSTANCE_CONNECTION_NAME"] == "proj-a:europe-west1:ce-db"
    assert data["DB_USER"] == "ce-runner@proj-a.iam"
    assert data["ENV"] == "production"
    assert data["PUBSUB_PROJECT_ID"] == "proj-a"
    assert {"PUBSUB_TOPIC", "PUBSUB_SUBSCRIPTION", "DB_NAME", "LOG_LEVEL"} <= set(data)
    for name, container in containers(manifests):
        assert not {"DB_PASSWORD", "DATABASE_URL"} & set(env_of(container)), name


def test_password_database(renders: dict[str, list[Manifest]]) -> None:
    manifests = renders["password-db"]
    data = config_data(manifests)
    assert data["USE_CLOUD_SQL_CONNECTOR"] == "true"
    assert data["DB_IAM_AUTH"] == "false"
    assert data["DB_USER"] == "consensus_app"
    for name, container in containers(manifests, tests=False):
        password = env_of(container)["DB_PASSWORD"]
        assert password["valueFrom"]["secretKeyRef"] == {
            "name": "ce-secrets",
            "key": "db-password",
        }, name


def test_database_url_outside_google_cloud(renders: dict[str, list[Manifest]]) -> None:
    manifests = renders["database-url"]
    data = config_data(manifests)
    assert data["USE_CLOUD_SQL_CONNECTOR"] == "false"
    assert "DB_INSTANCE_CONNECTION_NAME" not in data
    for name, container in containers(manifests, tests=False):
        env = env_of(container)
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL", name
        assert "DB_PASSWORD" not in env, name


def test_missing_connection_name_fails_the_render(render: Render) -> None:
    with pytest.raises(helm.HelmError, match="instanceConnectionName"):
        render({"database": {"mode": "cloudSqlIam", "instanceConnectionName": ""}})


def test_config_extra_cannot_override_managed_settings(render: Render) -> None:
    data = config_data(
        render({"config": {"extra": {"ENV": "development", "APPROVE_THRESHOLD": 0.9}}})
    )
    assert data["ENV"] == "production"
    assert data["APPROVE_THRESHOLD"] == "0.9"


def test_high_priority_worker_and_monitoring(renders: dict[str, list[Manifest]]) -> None:
    manifests = renders["everything-on"]
    high = worker(manifests, "ce-consensus-engine-worker-high")
    assert high["spec"]["replicas"] == 3
    (container,) = high["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker", "-Q", "consensus-engine-jobs-high"]
    env = env_of(container)
    assert (env["WORKER_PROCESSES"]["value"], env["WORKER_MAX_CONCURRENCY"]["value"]) == ("1", "4")
    assert high["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 60
    # KEDA scales only the standard workers.
    (scaled,) = by_kind(manifests, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "ce-consensus-engine-worker"

    (service_monitor,) = by_kind(manifests, "ServiceMonitor")
    (pod_monitor,) = by_kind(manifests, "PodMonitor")
    (rule,) = by_kind(manifests, "PrometheusRule")
    for crd in (service_monitor, pod_monitor, rule):
        assert crd["apiVersion"] == "monitoring.coreos.com/v1"
        assert crd["metadata"]["name"]
    assert service_monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The API's metrics port has its own ClusterIP Service: the API's may be public.
    metrics_service = one(manifests, "Service", "ce-consensus-engine-api-metrics")
    assert metrics_service["spec"]["type"] == "ClusterIP"
    assert metrics_service["spec"]["ports"] == [
        {"name": "metrics", "port": 9190, "targetPort": "metrics", "protocol": "TCP"}
    ]
    selected = service_monitor["spec"]["selector"]["matchLabels"].items()
    assert selected <= metrics_service["metadata"]["labels"].items()
    api_service = one(manifests, "Service", "ce-consensus-engine-api")
    assert not selected <= api_service["metadata"]["labels"].items()
    assert service_monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert service_monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    for name in ("ce-consensus-engine-worker", "ce-consensus-engine-worker-high"):
        pod_labels = worker(manifests, name)["spec"]["template"]["metadata"]["labels"]
        assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    # The rule file as it is, each alert with its runbook_url (test_chart_options checks them).
    alerts = helm.values_from_yaml((CHART_DIR / "files" / "alerts.yaml").read_text())
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            alert["annotations"].pop("runbook_url")
    assert rule["spec"] == alerts
    assert rule["spec"]["groups"] and all(group["rules"] for group in rule["spec"]["groups"])

    dashboard = one(manifests, "ConfigMap", "ce-consensus-engine-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Consensus"
    (payload,) = dashboard["data"].values()
    assert json.loads(payload) == json.loads((CHART_DIR / "files" / "dashboard.json").read_text())


def test_monitoring_objects_are_off_by_default(renders: dict[str, list[Manifest]]) -> None:
    kinds = {m["kind"] for m in renders["defaults"]}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert not [
        m
        for m in by_kind(renders["defaults"], "ConfigMap")
        if "grafana_dashboard" in m["metadata"]["labels"]
    ]


# -- offline schema validation ---------------------------------------------------------------


@pytest.mark.parametrize("label", list(VALUE_SETS))
def test_core_manifests_pass_strict_validation(
    renders: dict[str, list[Manifest]], kubernetes_validate: Any, label: str
) -> None:
    checked = 0
    for manifest in renders[label]:
        if manifest["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(copy.deepcopy(manifest), KUBE_VERSION, strict=True)
        checked += 1
    assert checked >= 9


def test_strict_validation_catches_a_bad_manifest(
    renders: dict[str, list[Manifest]], kubernetes_validate: Any
) -> None:
    broken = copy.deepcopy(worker(renders["defaults"]))
    broken["spec"]["template"]["spec"]["containers"][0]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)
