"""Each deployed role gets only what it uses: a ServiceAccount of its own (so each can be
granted its own cloud permissions), no Kubernetes API token in any pod, the API keys only in
the API, the LLM key only where an LLM is called, and, when enabled, network policies that leave
the worker's ports closed to the cluster and the metrics ports open only to the peers named.
Rendered by Helm itself."""

from __future__ import annotations

from typing import Any

from deploy.conftest import Manifest, Render

SECRETS = {"OPENAI_API_KEY", "API_KEYS"}
NEEDS = {
    "api": {"OPENAI_API_KEY", "API_KEYS"},  # the synchronous routes call the LLM
    "worker": {"OPENAI_API_KEY"},
    "migrate": set(),
    "sweeper": set(),
}
METRICS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def pods(manifests: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for m in manifests:
        if m["kind"] in ("Deployment", "Job"):
            spec = m["spec"]["template"]
        elif m["kind"] == "CronJob":
            spec = m["spec"]["jobTemplate"]["spec"]["template"]
        else:
            continue
        found.append((spec["metadata"]["labels"]["app.kubernetes.io/component"], spec["spec"]))
    return found


def test_every_role_gets_only_the_secrets_it_uses(render: Render) -> None:
    roles = pods(render({"worker": {"highPriority": {"enabled": True}}}))
    assert {role for role, _ in roles} >= set(NEEDS)
    for role, spec in roles:
        assert spec["automountServiceAccountToken"] is False, role
        for container in spec["containers"]:
            names = {e["name"] for e in container.get("env", []) if "valueFrom" in e}
            assert names & SECRETS == NEEDS[role], (role, names)


def test_every_role_has_a_service_account_of_its_own(render: Render) -> None:
    manifests = render({"worker": {"highPriority": {"enabled": True}}})
    used: dict[str, set[str]] = {}
    for role, spec in pods(manifests):
        used.setdefault(role, set()).add(spec["serviceAccountName"])
    assert set(used) == set(NEEDS)
    assert all(len(names) == 1 for names in used.values()), used  # both worker tiers share one
    accounts = {name for names in used.values() for name in names}
    assert len(accounts) == len(NEEDS), used
    rendered = {m["metadata"]["name"] for m in manifests if m["kind"] == "ServiceAccount"}
    assert accounts <= rendered, accounts - rendered


def test_existing_service_accounts_can_be_named_per_role(render: Render) -> None:
    names = {role: f"existing-{role}" for role in NEEDS}
    own = {role: {"name": name} for role, name in names.items()}
    manifests = render({"serviceAccount": {"create": False, **own}})
    assert not [m for m in manifests if m["kind"] == "ServiceAccount"]
    assert {role: spec["serviceAccountName"] for role, spec in pods(manifests)} == names


def test_network_policies_are_off_by_default(render: Render) -> None:
    assert [m for m in render() if m["kind"] == "NetworkPolicy"] == []


def test_network_policies_close_the_worker_ports_and_the_metrics_ports(render: Render) -> None:
    manifests = render({"networkPolicy": {"enabled": True, "metricsFrom": [METRICS_PEER]}})
    policies = {
        m["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: m["spec"]
        for m in manifests
        if m["kind"] == "NetworkPolicy"
    }
    assert set(policies) == {"api", "worker", "migrate", "sweeper"}
    assert all(p["policyTypes"] == ["Ingress"] for p in policies.values())
    [worker_rule] = policies["worker"]["ingress"]
    assert worker_rule == {"from": [METRICS_PEER], "ports": [{"port": 9191, "protocol": "TCP"}]}
    api_port, api_metrics = policies["api"]["ingress"]
    assert api_port == {"ports": [{"port": 8000, "protocol": "TCP"}]}
    assert api_metrics == {"from": [METRICS_PEER], "ports": [{"port": 9190, "protocol": "TCP"}]}
    assert policies["migrate"].get("ingress", []) == []
    assert policies["sweeper"].get("ingress", []) == []


def test_without_metrics_peers_only_the_api_port_is_open(render: Render) -> None:
    manifests = render({"networkPolicy": {"enabled": True}})
    [api] = [
        m["spec"]
        for m in manifests
        if m["kind"] == "NetworkPolicy"
        and m["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    ]
    assert api["ingress"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]}]
