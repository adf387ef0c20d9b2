"""The Kubernetes actions against a real kube-apiserver (tests/kube_control_plane.py), acting
as the receiver does in a pod: in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT, the
CA and a token in the service account directory), the token of a real ServiceAccount from
the TokenRequest API, and only the Role and RoleBinding `receiver manifests` renders,
applied with kubectl as a user would. Each test has a namespace of its own.

The stand-in (tests/kube_standin.py) runs the fast tests; these find what it cannot show:
TLS, the RBAC authorizer, real ReplicaSets and revisions, the HPA controller, Events,
rotated tokens and the server's own Status bodies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from receiver import configtree, settings
from receiver.actions.kubernetes import RESTARTED_AT, Kubernetes
from receiver.actions.runner import Actions
from receiver.errors import PermanentActionError
from receiver.models import Restart, Rollback, Scale, ServiceRef
from receiver.settings import ServiceTarget
from tests.actions.conftest import CARTS
from tests.conftest import make_settings
from tests.kube_control_plane import RECEIVER, ControlPlane, deployment, kubeconfig

ORDERS = ServiceRef(project="sockshop", stage="production", service="orders")
ACTING = """
remediations:
- name: response_time_p90
  actions: [{action: scaling, value: +1}, {action: restart}, {action: rollback}]
"""


@dataclasses.dataclass
class Pod:
    """The receiver's view of the cluster from inside a pod, for one test."""

    kube: ControlPlane
    namespace: str
    actions: Actions
    kubernetes: Kubernetes
    directory: Path  # the service account files
    secret: str  # the token is bound to it: deleting it revokes the token

    def replicas(self, name: str = "carts-primary") -> int:
        replicas: int = self.kube.get("deployment", name, self.namespace)["spec"]["replicas"]
        return replicas

    def rotate_token(self) -> tuple[str, str]:
        """A new token in the files, as the kubelet rotates it; the old one revoked at once
        (its Secret deleted). The (old, new) tokens."""
        old = (self.directory / "token").read_text()
        secret = f"token-{secrets.token_hex(4)}"
        self.kube.kubectl("create", "secret", "generic", secret, "-n", "selfheal")
        new = self.kube.token("selfheal", RECEIVER, bound_to=secret)
        self.kube.service_account_files(self.directory, "selfheal", new)
        self.kube.kubectl("delete", "secret", self.secret, "-n", "selfheal", "--wait=true")
        self.secret = secret
        return old, new


def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.2)


@pytest.fixture
async def pod(
    kube: ControlPlane, tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Pod]:
    namespace = f"shop-{secrets.token_hex(4)}"
    (config_dir / "sockshop" / "production" / "carts" / "remediation.yaml").write_text(
        ACTING  # the Role is rendered for what the rules do: here, every Kubernetes action
    )
    with (config_dir / "receiver.yaml").open("a") as file:  # the service lives in `namespace`
        file.write(f"\nservices:\n  sockshop/production/carts: {{namespace: {namespace}}}\n")
    kube.kubectl("create", "namespace", namespace)
    kube.apply(deployment(namespace, "carts-primary"))
    env, secret = kube.install_receiver(config_dir, tmp_path / "serviceaccount")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    directory = tmp_path / "serviceaccount"
    loaded = settings.load(config_dir, environ={})
    config = make_settings(tmp_path, services=loaded.services, action_backoff=0.1)
    kubernetes = await Kubernetes.connect(
        service_account_dir=directory, request_timeout=10, attempts=3, backoff=0.1
    )
    assert kubernetes.unavailable is None
    async with aiohttp.ClientSession() as session:
        actions = Actions.from_settings(
            config,
            session=session,
            kubernetes=kubernetes,
            configured=frozenset(configtree.scan(config_dir).services()),
        )
        try:
            yield Pod(kube, namespace, actions, kubernetes, directory, secret)
        finally:
            await kubernetes.close()
    kube.kubectl("delete", "namespace", namespace, "--wait=false")


async def test_scaling_adds_a_replica_as_a_pod_with_the_rendered_role(pod: Pod) -> None:
    journaled: list[dict[str, Any]] = []

    async def save(plan: dict[str, Any]) -> None:
        journaled.append(plan)

    outcome = await pod.actions.run(Scale(delta=1), CARTS, save=save)
    assert outcome.detail == f"scaled {pod.namespace}/carts-primary from 1 to 2 replicas"
    assert pod.replicas() == 2
    assert [(p["before"], p["target"]) for p in journaled] == [(1, 2)]
    # Resumed from that checkpoint (a restart with the PATCH's fate unknown): the same
    # absolute target, no second delta, no write.
    generation = pod.kube.get("deployment", "carts-primary", pod.namespace)["metadata"][
        "generation"
    ]
    await pod.actions.run(Scale(delta=1), CARTS, checkpoint=journaled[0])
    again = pod.kube.get("deployment", "carts-primary", pod.namespace)
    assert (again["spec"]["replicas"], again["metadata"]["generation"]) == (2, generation)


async def test_scaling_is_bounded_by_the_maximum(pod: Pod) -> None:
    pod.kube.kubectl("scale", "deployment", "carts-primary", "--replicas=9", "-n", pod.namespace)
    outcome = await pod.actions.run(Scale(delta=3), CARTS)
    assert outcome.detail.endswith("from 9 to 10 replicas (bounded by 1..10)")
    with pytest.raises(PermanentActionError, match="no effect: at maximum 10 replicas"):
        await pod.actions.run(Scale(delta=1), CARTS)
    assert pod.replicas() == 10


async def test_a_deployment_the_role_does_not_name_is_refused_naming_the_permission(
    pod: Pod, tmp_path: Path
) -> None:
    """orders is a service of the receiver's (here, in the same namespace) that no rule the
    Role was rendered for acts on: the real authorizer refuses, and the step says what RBAC
    must allow."""
    pod.kube.apply(deployment(pod.namespace, "orders"))
    services = dict(pod.actions._settings.services) | {
        str(ORDERS): ServiceTarget(namespace=pod.namespace)
    }
    pod.actions.reconfigure(make_settings(tmp_path, services=services), frozenset({CARTS, ORDERS}))
    with pytest.raises(PermanentActionError) as refused:
        await pod.actions.run(Scale(delta=1), ORDERS)
    assert str(refused.value) == (
        "forbidden: RBAC must allow verb 'get' on resource 'deployments/scale' (API group"
        f" apps) in namespace '{pod.namespace}': deployments.apps \"orders-primary\" is"
        f' forbidden: User "system:serviceaccount:selfheal:{RECEIVER}" cannot get resource'
        f' "deployments/scale" in API group "apps" in the namespace "{pod.namespace}"'
    )
    assert pod.replicas("orders") == 1


async def test_a_deployment_deleted_meanwhile_is_named_as_missing(pod: Pod) -> None:
    pod.kube.kubectl("delete", "deployment", "carts-primary", "-n", pod.namespace)
    with pytest.raises(PermanentActionError) as missing:
        await pod.actions.run(Scale(delta=1), CARTS)
    assert str(missing.value) == (
        f"no Deployment carts-primary or carts in namespace {pod.namespace}"
    )


async def test_a_writer_changing_the_deployment_meanwhile_does_not_stop_the_scaling(
    pod: Pod,
) -> None:
    """Each of its writes moves the resourceVersion the scaling's patch is conditional on: a
    409 re-read and retried at once, never a lost or doubled change."""
    stop = threading.Event()

    def annotate() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            pod.kube.kubectl("annotate", "deployment", "carts-primary", f"writer={n}",
                             "--overwrite", "-n", pod.namespace)  # fmt: skip

    writer = threading.Thread(target=annotate)
    writer.start()
    try:
        for expected in (2, 3, 4):
            await pod.actions.run(Scale(delta=1), CARTS)
            assert pod.replicas() == expected
    finally:
        stop.set()
        writer.join()


async def test_restart_rolls_the_pods_to_a_new_revision(pod: Pod) -> None:
    outcome = await pod.actions.run(Restart(), CARTS)
    restarted = outcome.data["restarted_at"]
    template = pod.kube.get("deployment", "carts-primary", pod.namespace)["spec"]["template"]
    assert template["metadata"]["annotations"][RESTARTED_AT] == restarted
    until(lambda: revision(pod) == 2, "the deployment controller's second revision")


def revision(pod: Pod, name: str = "carts-primary") -> int:
    annotations = pod.kube.get("deployment", name, pod.namespace)["metadata"].get("annotations", {})
    return int(annotations.get("deployment.kubernetes.io/revision", "0"))


def image(pod: Pod) -> str:
    template = pod.kube.get("deployment", "carts-primary", pod.namespace)["spec"]["template"]
    found: str = template["spec"]["containers"][0]["image"]
    return found


async def test_rollback_puts_the_previous_revisions_template_back_once(pod: Pod) -> None:
    until(lambda: revision(pod) == 1, "the first revision")
    pod.kube.kubectl("set", "image", "deployment/carts-primary", "app=carts:2", "-n", pod.namespace)
    until(lambda: revision(pod) == 2, "the second revision")
    journaled: list[dict[str, Any]] = []

    async def save(plan: dict[str, Any]) -> None:
        journaled.append(plan)

    outcome = await pod.actions.run(Rollback(), CARTS, save=save)
    assert outcome.detail == (
        f"rolled back {pod.namespace}/carts-primary from revision 2 to the template of"
        " revision 1 (images carts:1)"
    )
    assert image(pod) == "carts:1"
    until(lambda: revision(pod) == 3, "the rollback's revision")  # what kubectl's does too
    history = pod.kube.kubectl(
        "rollout", "history", "deployment/carts-primary", "-n", pod.namespace
    )
    assert [line.split()[0] for line in history.stdout.splitlines()[2:] if line.strip()] == [
        "2",
        "3",
    ]
    # Run again from its checkpoint (a retry, a restart): the same template, not a second
    # undo (which would roll forward to carts:2 again).
    again = await pod.actions.run(Rollback(), CARTS, checkpoint=journaled[0])
    assert again.detail.endswith("; it had that template already")
    assert (image(pod), revision(pod)) == ("carts:1", 3)


async def test_rollback_without_a_previous_revision_is_refused_with_why(pod: Pod) -> None:
    until(lambda: revision(pod) == 1, "the first revision")
    with pytest.raises(PermanentActionError) as refused:
        await pod.actions.run(Rollback(), CARTS)
    assert str(refused.value) == (
        f"no previous revision to roll back to: {pod.namespace}/carts-primary has only revision 1"
    )


async def test_an_autoscaler_gets_its_floor_raised_and_its_controller_scales(pod: Pod) -> None:
    """Scaling a Deployment an HPA owns would be undone by the HPA within seconds while the
    journal said it was scaled: its minReplicas is raised instead, and the real HPA
    controller scales the Deployment up to it."""
    pod.kube.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "carts-primary", "namespace": pod.namespace},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": "carts-primary"
                },
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": 80}}}],
            },
        }
    )  # fmt: skip
    outcome = await pod.actions.run(Scale(delta=1), CARTS)
    assert outcome.detail == (
        f"raised the minReplicas of autoscaler {pod.namespace}/carts-primary from 1 to 2: it"
        " owns the replicas of carts-primary (1 now), and would undo a change of them"
    )
    hpa = pod.kube.get("hpa", "carts-primary", pod.namespace)
    assert hpa["spec"]["minReplicas"] == 2
    until(lambda: pod.replicas() == 2, "the HPA controller enforcing its new floor")
    await pod.actions.run(Scale(delta=5), CARTS)  # bounded by the autoscaler's maximum
    assert pod.kube.get("hpa", "carts-primary", pod.namespace)["spec"]["minReplicas"] == 3
    until(lambda: pod.replicas() == 3, "the floor of 3")
    with pytest.raises(PermanentActionError, match=r"no effect: .* the most allowed by the"):
        await pod.actions.run(Scale(delta=1), CARTS)
    # The scale-back gives the autoscaler its floor back.
    back = await pod.actions.scale_to(outcome.data, 1)
    assert (
        back.detail
        == f"set the minReplicas of autoscaler {pod.namespace}/carts-primary back from 3 to 1"
    )
    assert pod.kube.get("hpa", "carts-primary", pod.namespace)["spec"]["minReplicas"] == 1


async def test_a_rotated_token_is_followed_at_once_and_the_revoked_one_is_refused(
    pod: Pod,
) -> None:
    await pod.actions.run(Scale(delta=1), CARTS)
    old, new = pod.rotate_token()
    # The old token is revoked for real: the API server refuses it once its cache of good
    # tokens (10 s) lets go of it.
    config = kubeconfig(
        pod.directory.parent / "old.kubeconfig", server=pod.kube.url, ca=pod.kube.ca, token=old
    )
    until(
        lambda: pod.kube.kubectl("auth", "whoami", kubeconfig=config, check=False).returncode != 0,
        "the revoked token refused",
    )
    refused = pod.kube.kubectl("auth", "whoami", kubeconfig=config, check=False)
    assert "Unauthorized" in refused.stderr
    # Within the minute kubernetes-asyncio would have gone on with the old one: the next
    # action succeeds.
    await pod.actions.run(Scale(delta=1), CARTS)
    assert pod.replicas() == 3
    assert new != old


async def test_events_tell_kubectl_what_the_receiver_did(pod: Pod) -> None:
    await pod.actions.announce(
        CARTS, reason="RemediationScaled", action="Scale",
        note="remediation 7 (rule 'response_time_p90') step 1: scaling done: scaled",
    )  # fmt: skip
    await pod.actions.announce(
        CARTS, reason="RemediationEscalated", action="Escalate", note="no action healed it",
        warning=True,
    )  # fmt: skip
    shown = pod.kube.kubectl("events", "--for", "deployment/carts-primary", "-n", pod.namespace)
    lines = shown.stdout.splitlines()
    assert any("RemediationScaled" in line and "remediation 7" in line for line in lines), lines
    assert any("Warning" in line and "RemediationEscalated" in line for line in lines), lines
    (event,) = [
        e
        for e in pod.kube.events(pod.namespace, "carts-primary")
        if e["reason"] == "RemediationScaled"
    ]
    assert (event["reportingController"], event["regarding"]["kind"]) == (RECEIVER, "Deployment")


async def test_an_event_that_cannot_be_written_never_fails_anything(pod: Pod) -> None:
    role = pod.kube.get("role", RECEIVER, pod.namespace)
    role["rules"] = [r for r in role["rules"] if r["resources"] != ["events"]]
    pod.kube.kubectl("apply", "-f", "-", input=json.dumps(role))
    await pod.actions.announce(CARTS, reason="RemediationScaled", action="Scale", note="x")
    events = pod.kube.events(pod.namespace, "carts-primary")
    assert [e for e in events if e.get("reportingController") == RECEIVER] == []
    await pod.actions.run(Scale(delta=1), CARTS)
    assert pod.replicas() == 2


def test_the_shipped_manifests_pass_the_api_servers_own_validation(kube: ControlPlane) -> None:
    """`kubectl apply --dry-run=server`: schemas, field validation and admission of the real
    API server, for the base and the HA overlay; a broken manifest is refused."""
    root = Path(__file__).resolve().parents[2] / "manifests"
    for namespace in ("selfheal", "sockshop-production"):
        kube.kubectl("create", "namespace", namespace, check=False)
    for tree in (root, root / "overlays" / "ha"):
        applied = kube.kubectl("apply", "--dry-run=server", "--validate=strict", "-k", str(tree))
        assert "deployment.apps/selfheal-receiver created (server dry run)" in applied.stdout
    rendered = kube.kubectl("kustomize", str(root)).stdout
    broken = rendered.replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: yes please")
    refused = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=broken, check=False)
    assert refused.returncode != 0
    assert "readOnlyRootFilesystem" in refused.stderr
    unknown = yaml.safe_dump_all(
        [d | {"spec": d["spec"] | {"replica": 2}} if d["kind"] == "Deployment" else d
         for d in yaml.safe_load_all(rendered) if d]
    )  # fmt: skip
    refused = kube.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-",
                           input=unknown, check=False)  # fmt: skip
    assert refused.returncode != 0
    assert 'unknown field "spec.replica"' in refused.stderr


async def test_without_kubernetes_access_nothing_is_tried(tmp_path: Path) -> None:
    kubernetes = await Kubernetes.connect(service_account_dir=tmp_path / "none")
    assert kubernetes.unavailable is not None
    await asyncio.sleep(0)
