"""A real `receiver serve`, configured as in a pod, remediating against a real kube-apiserver
(tests/kube_control_plane.py): the Events it leaves for `kubectl events`, and a SIGKILL while
its scale PATCH is in flight — held in the API server's own admission by a validating
webhook — after which the replica count is still added once."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests import processes, prometheus_standin
from tests.conftest import AUTH, EXAMPLE_CONFIG, TOKEN, payload
from tests.kube_control_plane import ControlPlane, deployment

WINDOW = "2s"
FAST = {
    prometheus_standin.response_time_p90(WINDOW): 300.0,
    prometheus_standin.error_rate(WINDOW): 0.0,
}


def until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.1)
    return found


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return json.load(answer)


def fire(port: int) -> int:
    body = payload("alertmanager-firing.json")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/alertmanager",
        data=json.dumps(body).encode(),
        headers=AUTH | {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        remediation: int = json.load(answer)["recorded"][0]["remediation_id"]
        return remediation


@pytest.fixture
def cluster_pod(kube: ControlPlane, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    """The example configuration with carts in a namespace of this test's, the receiver's
    RBAC applied, and the environment of its pod: (config, env, namespace)."""
    namespace = f"shop-{secrets.token_hex(4)}"
    config = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, config)
    with (config / "receiver.yaml").open("a") as file:
        file.write(f"\nservices:\n  sockshop/production/carts: {{namespace: {namespace}}}\n")
    kube.kubectl("create", "namespace", namespace)
    kube.apply(deployment(namespace, "carts-primary"))
    env, _ = kube.install_receiver(config, tmp_path / "serviceaccount")
    with processes.serve_in_thread(prometheus_standin.create_app(dict(FAST))) as prometheus:
        env |= {
            "RECEIVER_AUTH_TOKEN": TOKEN,
            "RECEIVER_STORE": str(tmp_path / "journal.db"),
            "RECEIVER_PROMETHEUS_URL": prometheus,
            "RECEIVER_REMEDIATION_WAIT": "3s",
            "RECEIVER_REMEDIATION_EVALUATION_WINDOW": WINDOW,
            "RECEIVER_REMEDIATION_COOLDOWN": "0s",
            "POD_NAME": "selfheal-receiver-7d9f-abcde",
        }
        yield config, env, namespace
    kube.kubectl("delete", "namespace", namespace, "--wait=false")


def test_a_remediation_tells_kubectl_events_what_it_did_and_why(
    kube: ControlPlane, cluster_pod: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    config, env, namespace = cluster_pod
    port = processes.free_port()
    with processes.receiver(config, port=port, log=tmp_path / "receiver.log", **env):
        assert get(port, "/readyz")["checks"]["kubernetes"] == "connected"
        rid = fire(port)
        done = until(
            lambda: (r := get(port, f"/api/v1/remediations/{rid}"))["phase"] == "done" and r,
            "the remediation's end",
        )
    assert done["state"] == "healed"
    assert kube.get("deployment", "carts-primary", namespace)["spec"]["replicas"] == 2
    shown = kube.kubectl("events", "--for", "deployment/carts-primary", "-n", namespace).stdout
    ours = [
        e
        for e in kube.events(namespace, "carts-primary")
        if e.get("reportingController") == "selfheal-receiver"
    ]
    assert [e["reason"] for e in sorted(ours, key=lambda e: e["eventTime"])] == [
        "RemediationScaling",
        "RemediationScaled",
        "RemediationHealed",
    ]
    for reason in ("RemediationScaling", "RemediationScaled", "RemediationHealed"):
        assert reason in shown, shown
    healed = next(e for e in ours if e["reason"] == "RemediationHealed")
    assert healed["note"].startswith(
        f"remediation {rid} (rule 'response_time_p90') step 1: healed:"
    )
    assert healed["reportingInstance"] == "selfheal-receiver-7d9f-abcde"


class Hold:
    """A validating admission webhook that holds every scale of a Deployment in its
    namespace until released: the API server waits for it with the receiver's PATCH."""

    def __init__(self) -> None:
        self.held: list[dict[str, Any]] = []
        self.release = threading.Event()

    def app(self) -> web.Application:
        async def review(request: web.Request) -> web.Response:
            document = await request.json()
            self.held.append(document["request"])
            await asyncio.to_thread(self.release.wait, 60)
            return web.json_response(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": document["request"]["uid"], "allowed": True},
                }
            )

        app = web.Application()
        app.router.add_post("/validate", review)
        return app


def test_killed_with_its_scale_patch_in_flight_it_adds_the_replica_once(
    kube: ControlPlane, cluster_pod: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    config, env, namespace = cluster_pod
    hold = Hold()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki = kube.home / "pki"
    context.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")  # serves 127.0.0.1
    with processes.serve_in_thread(hold.app(), ssl_context=context) as url:
        kube.apply(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": f"hold-{namespace}"},
                "webhooks": [
                    {
                        "name": "hold.selfheal.test",
                        "clientConfig": {
                            "url": f"{url}/validate",
                            "caBundle": base64.b64encode(kube.ca.read_bytes()).decode(),
                        },
                        "rules": [
                            {
                                "apiGroups": ["apps"],
                                "apiVersions": ["v1"],
                                "operations": ["UPDATE"],
                                "resources": ["deployments/scale"],
                            }
                        ],
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": namespace}
                        },
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                        "timeoutSeconds": 30,
                        "failurePolicy": "Fail",
                    }
                ],
            }
        )
        try:
            port = processes.free_port()
            log = tmp_path / "receiver.log"
            with processes.receiver(config, port=port, log=log, **env) as first:
                rid = fire(port)
                until(lambda: hold.held, "the scale PATCH held in the API server's admission")
                first.kill()  # SIGKILL: the PATCH is in flight, its fate unknown to the journal
                first.wait()
            hold.release.set()
            with processes.receiver(config, port=port, log=log, **env):
                done = until(
                    lambda: (
                        (r := get(port, f"/api/v1/remediations/{rid}"))["phase"] == "done" and r
                    ),
                    "the remediation's end after the restart",
                )
        finally:
            kube.kubectl("delete", "validatingwebhookconfiguration", f"hold-{namespace}")
    assert done["state"] == "healed"
    (step,) = done["steps"]
    assert (step["action"], step["data"]["target"]) == ("scaling", 2)
    final = kube.get("deployment", "carts-primary", namespace)
    # One added replica, one change of the spec: never a second delta.
    assert (final["spec"]["replicas"], final["metadata"]["generation"]) == (2, 2)
