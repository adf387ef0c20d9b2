"""What ships: the Dockerfile, the Kubernetes manifests, the Alertmanager example."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from receiver import cli, manifests
from tests import processes

ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.30.0"
STANDARD_KINDS = {
    "Namespace",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "Deployment",
    "Service",
    "ConfigMap",
    "Role",
    "RoleBinding",
    "Secret",
    "NetworkPolicy",
}


def kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl") or shutil.which(
        "kubectl", path=str(Path(sys.executable).parent)
    )
    assert kubectl, "kubectl is not installed: run scripts/test"
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(ROOT / "manifests")


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (document,) = [d for d in documents if d["kind"] == kind]
    return document


def test_hadolint_accepts_the_dockerfile() -> None:
    result = subprocess.run(
        [processes.binary("hadolint"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_numeric_non_root_user_with_an_exec_entrypoint() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert sum(line.startswith("FROM ") for line in lines) == 2  # multi-stage
    assert "USER 10001:10001" in lines
    assert 'ENTRYPOINT ["receiver", "serve"]' in lines
    assert not any(line.startswith("HEALTHCHECK") for line in lines)
    copies = [line for line in lines if line.startswith("COPY")]
    assert copies.index("COPY requirements.lock ./") < copies.index(
        "COPY receiver ./receiver"
    )  # dependencies in their own layer before the source


def test_the_image_is_built_from_a_pinned_base_and_hash_locked_dependencies() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert len(set(bases)) == 1
    assert re.fullmatch(r"python:3\.11[.\d]*-slim-bookworm@sha256:[0-9a-f]{64}", bases[0])
    assert "RUN pip install --require-hashes --no-deps -r requirements.lock" in lines
    # The receiver itself: nothing unlocked, the set consistent, nothing of the build left.
    install = "RUN pip install --no-deps . && pip check && pip uninstall --yes --quiet setuptools"
    assert install in lines
    # The lock pins every dependency pyproject.toml names, each with its hashes, at the
    # version the tests run with.
    lock = (ROOT / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([a-z0-9-]+)==(\S+) \\$", lock, flags=re.MULTILINE))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=~!\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not in requirements.lock"
        assert importlib.metadata.version(name) == pinned[name], f"{name}: lock and tests differ"
    entries = re.split(r"\n(?=[a-z0-9-]+==)", lock)[1:]
    assert len(entries) == len(pinned)
    assert all("--hash=sha256:" in entry for entry in entries)


def test_every_rendered_resource_is_valid_against_the_kubernetes_schemas(
    base: list[dict[str, Any]],
) -> None:
    secret = yaml.safe_load((ROOT / "manifests" / "secret.template.yaml").read_text())
    for document in [*base, secret]:
        assert document["kind"] in STANDARD_KINDS
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_the_deployment_is_locked_down(base: list[dict[str, Any]]) -> None:
    deployment = one(base, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "memory" in container["resources"]["limits"]
    # Not the 1 s default: a probe late under load must not restart the pod mid-incident.
    assert container["livenessProbe"]["timeoutSeconds"] >= 3
    assert container["readinessProbe"]["timeoutSeconds"] >= 3
    assert container["image"] == "selfheal-receiver:0.1.0"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["journal"]["persistentVolumeClaim"]["claimName"] == "selfheal-journal"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RECEIVER_STORE"].startswith(mounts["journal"])
    items = {i["key"]: i["path"] for i in volumes["config"]["configMap"]["items"]}
    assert items["sockshop__production__carts__remediation.yaml"] == (
        "sockshop/production/carts/remediation.yaml"
    )
    assert set(items) == set(one(base, "ConfigMap")["data"])


def test_rbac_is_least_privilege_in_the_namespaces_of_configured_services(
    base: list[dict[str, Any]],
) -> None:
    kinds = {d["kind"] for d in base}
    assert "ClusterRole" not in kinds
    assert "ClusterRoleBinding" not in kinds
    roles = [d for d in base if d["kind"] == "Role"]
    assert [r["metadata"]["namespace"] for r in roles] == ["sockshop-production"]
    allowed = {
        ("apps", "deployments"): {"get", "patch"},
        ("apps", "deployments/scale"): {"get", "patch"},
        ("apps", "replicasets"): {"list"},
        ("autoscaling", "horizontalpodautoscalers"): {"get", "list", "patch"},
        ("events.k8s.io", "events"): {"create"},
    }
    for role in roles:
        for rule in role["rules"]:
            ((group,), (resource,)) = rule["apiGroups"], rule["resources"]
            assert set(rule["verbs"]) <= allowed[(group, resource)]
            # Named objects only, but for the verbs Kubernetes cannot narrow to names.
            assert ("resourceNames" in rule) == (not set(rule["verbs"]) <= {"list", "create"})
    (binding,) = [d for d in base if d["kind"] == "RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "selfheal-receiver", "namespace": "selfheal"}
    ]


def test_rbac_follows_the_services_the_configuration_names(
    tmp_path: Path, config_dir: Path
) -> None:
    (config_dir / "shop" / "prod" / "orders").mkdir(parents=True)
    (config_dir / "shop" / "prod" / "orders" / "remediation.yaml").write_text(
        "remediations:\n- name: x\n  actions: [{action: restart}]\n"
    )
    rendered = manifests.render(config_dir, namespace="selfheal")
    roles = [
        d
        for d in yaml.safe_load_all(rendered["base/generated/rbac.yaml"])
        if d and d["kind"] == "Role"
    ]
    assert [r["metadata"]["namespace"] for r in roles] == ["shop-prod", "sockshop-production"]
    # What each namespace's Role grants follows from the actions of its services' rules, on
    # the Deployments the templates may name and no other.
    events = {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]}
    assert roles[0]["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],  # a restart finds its Deployment here
            "resourceNames": ["orders", "orders-primary"],
            "verbs": ["get"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["orders", "orders-primary"],
            "verbs": ["patch"],
        },
        events,  # what it did, on its Deployment: kubectl describe shows it
    ]
    assert roles[1]["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": ["carts", "carts-primary"],
            "verbs": ["get", "patch"],
        },
        {  # an autoscaler that owns the replicas gets its floor raised instead
            "apiGroups": ["autoscaling"],
            "resources": ["horizontalpodautoscalers"],
            "resourceNames": ["carts", "carts-primary"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["autoscaling"],
            "resources": ["horizontalpodautoscalers"],
            "verbs": ["list"],
        },
        events,
    ]


def test_a_service_whose_rules_touch_no_deployment_gets_no_role(config_dir: Path) -> None:
    carts = config_dir / "sockshop" / "production" / "carts" / "remediation.yaml"
    carts.write_text("remediations:\n- name: default\n  actions: [{action: escalate}]\n")
    rendered = manifests.render(config_dir, namespace="selfheal")["base/generated/rbac.yaml"]
    assert [d for d in yaml.safe_load_all(rendered) if d] == []


def test_the_network_policy_admits_webhooks_from_monitoring_and_egress_to_what_is_configured(
    config_dir: Path,
) -> None:
    (config_dir / "receiver.yaml").write_text(
        "unleash: {url: 'http://unleash.flags.svc.cluster.local:4242'}\n"
        "dynatrace: {url: 'https://abc12345.live.dynatrace.com'}\n"
        "escalation: {webhook_url: 'http://10.0.0.7:9000/hook'}\n"
    )
    rendered = manifests.render(
        config_dir,
        namespace="selfheal",
        webhooks_from=("monitoring", "ingress-nginx"),
        deployment_env={"RECEIVER_PROMETHEUS_URL": "http://prometheus-server.monitoring.svc:80"},
    )
    (policy,) = yaml.safe_load_all(rendered["base/generated/networkpolicy.yaml"])
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert [f["namespaceSelector"]["matchLabels"] for f in ingress["from"]] == [
        {"kubernetes.io/metadata.name": "monitoring"},
        {"kubernetes.io/metadata.name": "ingress-nginx"},
    ]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8080}]

    def namespace(rule: dict[str, Any]) -> str | None:
        labels = rule["to"][0].get("namespaceSelector", {}).get("matchLabels", {})
        name: str | None = labels.get("kubernetes.io/metadata.name")
        return name

    dns, api, prometheus, dynatrace, unleash, escalation = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert api["ports"] == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
    # In-cluster Services: their namespace, any port (a policy sees the pod's port, 9090).
    assert (namespace(prometheus), "ports" in prometheus) == ("monitoring", False)
    assert (namespace(unleash), "ports" in unleash) == ("flags", False)
    assert dynatrace == {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }
    assert escalation == {
        "to": [{"ipBlock": {"cidr": "10.0.0.7/32"}}],
        "ports": [{"protocol": "TCP", "port": 9000}],
    }


def test_the_generated_files_are_up_to_date_with_config() -> None:
    deployment_env = manifests.deployment_env(ROOT / "manifests" / "base" / "deployment.yaml")
    rendered = manifests.render(
        ROOT / "config", namespace="selfheal", deployment_env=deployment_env
    )
    for name, text in rendered.items():
        checked_in = (ROOT / "manifests" / name).read_text()
        assert checked_in == text, f"manifests/{name} is stale: run receiver manifests"


def test_the_monitoring_overlay_renders_and_its_rules_pass_promtool(tmp_path: Path) -> None:
    documents = kustomize(ROOT / "manifests" / "overlays" / "monitoring")
    kinds = {d["kind"] for d in documents}
    assert {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"} <= kinds
    rule = one(documents, "PrometheusRule")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run(
        [processes.binary("promtool"), "check", "rules", str(tmp_path / "rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = one(documents, "AlertmanagerConfig")
    webhook = config["spec"]["receivers"][0]["webhookConfigs"][0]
    assert webhook["url"].endswith("/webhooks/alertmanager")
    assert webhook["httpConfig"]["authorization"]["credentials"]["key"] == "auth-token"
    # The operator's default matcher strategy (OnNamespace) adds namespace="<its namespace>"
    # to the AlertmanagerConfig's route: every generated alert must carry that label, and
    # the route's own matchers must hold for it too.
    routed = config["metadata"]["namespace"]
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert alerts
    for alert in alerts:
        assert alert["labels"]["namespace"] == routed
        for matcher in config["spec"]["route"]["matchers"]:
            assert alert["labels"][matcher["name"]] == matcher["value"]
    # Selected by kube-prometheus-stack's default selectors (the release label).
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert one(documents, "ServiceMonitor")["metadata"]["labels"]["release"] == (
        "kube-prometheus-stack"
    )


def test_the_rule_labels_are_the_users_to_set(config_dir: Path, tmp_path: Path) -> None:
    argv = ["manifests", "--config", str(config_dir), "--output", str(tmp_path)]
    assert cli.main([*argv, "--rule-label", "release=prometheus"]) == 0
    rule = yaml.safe_load(
        (tmp_path / "overlays" / "monitoring" / "prometheus-rule.yaml").read_text()
    )
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert cli.main([*argv, "--rule-label", "release"]) == 2


def test_the_alertmanager_example_passes_amtool() -> None:
    result = subprocess.run(
        [processes.binary("amtool"), "check-config", str(ROOT / "config" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dynatrace_body_to_paste_becomes_a_valid_problem_once_filled() -> None:
    template = (ROOT / "config" / "dynatrace-webhook.json").read_text()
    filled = template
    for placeholder, value in {
        "{State}": "OPEN",
        "{ProblemID}": "P-1",
        "{PID}": "123_456V2",
        "{ProblemTitle}": "Response time degradation",
        "{ProblemURL}": "https://x",
        "{ProblemSeverity}": "PERFORMANCE",
        "{ProblemImpact}": "SERVICE",
        "{ProblemDetailsJSON}": '{"id": "123_456V2"}',
        "{Tags}": "keptn_project:sockshop, keptn_stage:production, keptn_service:carts",
        "{ImpactedEntities}": "[]",
        "{ImpactedEntity}": "carts",
    }.items():
        filled = filled.replace(placeholder, value)
    from receiver.sources import dynatrace

    problem = dynatrace.parse(yaml.safe_load(filled))
    assert (problem.title, problem.service) == ("Response time degradation", "carts")


def test_the_ha_overlay_runs_replicas_on_postgresql_from_a_secret() -> None:
    documents = kustomize(ROOT / "manifests" / "overlays" / "ha")
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    kinds = [d["kind"] for d in documents]
    assert "PersistentVolumeClaim" not in kinds  # the journal is the database
    deployment = one(documents, "Deployment")
    spec = deployment["spec"]
    assert (spec["replicas"], spec["strategy"]["type"]) == (3, "RollingUpdate")
    pod = spec["template"]["spec"]
    assert pod["affinity"]["podAntiAffinity"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["RECEIVER_STORE"] == {
        "name": "RECEIVER_STORE",
        "valueFrom": {"secretKeyRef": {"name": "selfheal-receiver-store", "key": "url"}},
    }
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    journal = next(v for v in pod["volumes"] if v["name"] == "journal")
    assert journal == {"name": "journal", "emptyDir": {}}
    budget = one(documents, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    egress = [d for d in documents if d["kind"] == "NetworkPolicy"]
    assert any(
        port.get("port") == 5432
        for policy in egress
        for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
    )
