"""Scaling and restart through kubernetes-asyncio against the API server stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from receiver import configtree, manifests, settings
from receiver.actions.kubernetes import RESTARTED_AT, Kubernetes
from receiver.actions.runner import Actions
from receiver.errors import PermanentActionError, TemporaryActionError
from receiver.models import Restart, Rollback, Scale, ServiceRef
from receiver.settings import ServiceTarget
from tests import kube_standin, processes
from tests.actions.conftest import BACKOFF, CARTS, MakeActions, Sleeps
from tests.kube_standin import Cluster, write_kubeconfig

NS = "sockshop-production"


async def test_scaling_adds_a_replica_and_journals_the_target_first(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    actions = await make_actions()
    saved: list[dict[str, Any]] = []

    async def save(plan: dict[str, Any]) -> None:
        saved.append(plan | {"replicas_when_saved": cluster.replicas(NS, "carts-primary")})

    outcome = await actions.run(Scale(delta=1), CARTS, save=save)
    assert cluster.replicas(NS, "carts-primary") == 2
    patches = [
        kind
        for (method, _, _), kind in zip(cluster.calls, cluster.content_types, strict=True)
        if method == "PATCH"
    ]
    assert patches == ["application/merge-patch+json"]  # said, not left to the client's guess
    assert outcome.detail == "scaled sockshop-production/carts-primary from 1 to 2 replicas"
    assert saved == [
        {
            "kind": "scale",
            "namespace": NS,
            "deployment": "carts-primary",
            "before": 1,
            "target": 2,
            "delta": 1,
            "replicas_when_saved": 1,
        }
    ]
    assert cluster.count("PATCH", "/scale") == 1


async def test_the_plain_service_name_is_the_fallback(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    del cluster.deployments[(NS, "carts-primary")]
    cluster.add_deployment(NS, "carts", replicas=2)
    await (await make_actions()).run(Scale(delta=1), CARTS)
    assert cluster.replicas(NS, "carts") == 3


async def test_at_the_maximum_scaling_has_no_effect_and_fails(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.deployments[(NS, "carts-primary")]["spec"]["replicas"] = 10
    with pytest.raises(PermanentActionError, match="no effect: at maximum 10 replicas"):
        await (await make_actions()).run(Scale(delta=1), CARTS)
    assert cluster.count("PATCH") == 0


async def test_a_delta_is_bounded_by_the_maximum(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.deployments[(NS, "carts-primary")]["spec"]["replicas"] = 9
    outcome = await (await make_actions()).run(Scale(delta=3), CARTS)
    assert cluster.replicas(NS, "carts-primary") == 10
    assert outcome.detail.endswith("from 9 to 10 replicas (bounded by 1..10)")


async def test_scaling_down_stops_at_the_minimum(make_actions: MakeActions) -> None:
    with pytest.raises(PermanentActionError, match="no effect: at minimum 1 replicas"):
        await (await make_actions()).run(Scale(delta=-1), CARTS)


async def test_services_in_receiver_yaml_aim_the_action_and_the_rendered_rbac_allows_it(
    cluster: Cluster, kubeconfig: Path, config_dir: Path
) -> None:
    """`services:` decides which namespace and Deployment may be touched: read from the
    file, used by the action, and granted by the Role `receiver manifests` renders."""
    cluster.add_deployment("shop", "cart-service", replicas=3)
    orders = config_dir / "sockshop" / "production" / "orders"
    orders.mkdir()
    (orders / "remediation.yaml").write_text(
        "remediations:\n- name: default\n  actions: [{action: scaling, value: +1}]\n"
    )
    with (config_dir / "receiver.yaml").open("a") as file:
        file.write(
            "\nservices:\n  sockshop/production/orders:\n    namespace: shop\n"
            "    deployment: cart-service\n    max_replicas: 4\n"
        )
    config = settings.load(config_dir, environ={})
    assert config.services["sockshop/production/orders"] == ServiceTarget(
        namespace="shop", deployment="cart-service", max_replicas=4
    )
    rbac = manifests.render(config_dir, namespace="selfheal")["base/generated/rbac.yaml"]
    cluster.roles = [d for d in yaml.safe_load_all(rbac) if d and d["kind"] == "Role"]
    assert {role["metadata"]["namespace"] for role in cluster.roles} == {
        "shop",
        "sockshop-production",
    }
    kubernetes = await Kubernetes.connect(attempts=1, backoff=0.0)
    async with aiohttp.ClientSession() as session:
        actions = Actions.from_settings(
            config,
            session=session,
            kubernetes=kubernetes,
            configured=frozenset(configtree.scan(config_dir).services()),
        )
        try:
            ref = ServiceRef(project="sockshop", stage="production", service="orders")
            await actions.run(Scale(delta=1), ref)
            assert cluster.replicas("shop", "cart-service") == 4
            with pytest.raises(PermanentActionError, match="at maximum 4 replicas"):
                await actions.run(Scale(delta=1), ref)
        finally:
            await kubernetes.close()


async def test_a_resumed_scaling_applies_the_journaled_target_never_a_second_delta(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    actions = await make_actions()
    plan = {
        "kind": "scale",
        "namespace": NS,
        "deployment": "carts-primary",
        "before": 1,
        "target": 2,
        "delta": 1,
    }
    await actions.run(Scale(delta=1), CARTS, checkpoint=plan)  # crashed before the patch
    await actions.run(Scale(delta=1), CARTS, checkpoint=plan)  # crashed after it
    assert cluster.replicas(NS, "carts-primary") == 2
    assert cluster.count("PATCH", "/scale") == 1  # the second found 2 already


async def test_a_conflicting_write_is_reread_and_retried(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    plan = {
        "kind": "scale",
        "namespace": NS,
        "deployment": "carts-primary",
        "before": 1,
        "target": 2,
        "delta": 1,
    }
    cluster.conflicts = 1  # someone else writes between our read and our patch
    await (await make_actions()).run(Scale(delta=1), CARTS, checkpoint=plan)
    assert cluster.replicas(NS, "carts-primary") == 2
    assert cluster.count("PATCH", "/scale") == 2  # 409 once, then through


async def test_forbidden_names_the_missing_rbac_permission(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.forbid("patch", "deployments/scale", NS)
    with pytest.raises(PermanentActionError) as caught:
        await (await make_actions()).run(Scale(delta=1), CARTS)
    message = str(caught.value)
    assert "RBAC must allow verb 'patch' on resource 'deployments/scale'" in message
    assert f"in namespace '{NS}'" in message
    assert cluster.count("PATCH", "/scale") == 1  # permanent: not retried


async def test_a_missing_deployment_names_namespace_and_names(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.deployments.clear()
    with pytest.raises(
        PermanentActionError, match=f"no Deployment carts-primary or carts in namespace {NS}"
    ):
        await (await make_actions()).run(Scale(delta=1), CARTS)


async def test_server_errors_are_retried_a_bounded_number_of_times(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.fail("PATCH", "/scale", 500, times=2)
    await (await make_actions()).run(Scale(delta=1), CARTS)
    assert cluster.replicas(NS, "carts-primary") == 2
    cluster.fail("PATCH", "/scale", 503, times=5)
    with pytest.raises(TemporaryActionError, match="gave up after 3 attempts"):
        await (await make_actions()).run(Scale(delta=1), CARTS)
    assert cluster.replicas(NS, "carts-primary") == 2


async def test_an_action_that_never_answers_times_out(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.delay = 3
    with pytest.raises(PermanentActionError, match=r"timed out after 0.3 s"):
        await (await make_actions(action_timeout=0.3)).run(Scale(delta=1), CARTS)


async def test_a_payload_cannot_choose_an_unconfigured_target(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    actions = await make_actions()
    for service in ("orders", "../kube-system"):
        intruder = ServiceRef(project="sockshop", stage="production", service=service)
        with pytest.raises(PermanentActionError, match="is not a configured service"):
            await actions.run(Scale(delta=1), intruder)
    assert cluster.count("GET") == 0


async def test_restart_stamps_the_pod_template_once(
    make_actions: MakeActions, cluster: Cluster, config_dir: Path
) -> None:
    remediation = config_dir / "sockshop" / "production" / "carts" / "remediation.yaml"
    remediation.write_text("remediations:\n- name: default\n  actions: [{action: restart}]\n")
    cluster.roles = kube_standin.roles_for(config_dir)  # a restart is granted where one is used
    actions = await make_actions()
    saved: list[dict[str, Any]] = []

    async def save(plan: dict[str, Any]) -> None:
        saved.append(plan)

    outcome = await actions.run(Restart(), CARTS, save=save)
    deployment = cluster.deployments[(NS, "carts-primary")]
    stamp = deployment["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert stamp == saved[0]["restarted_at"]
    assert deployment["metadata"]["generation"] == 2
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"] == {"app": "carts-primary"}  # merged, not replaced
    assert template["spec"]["containers"] == [{"name": "carts-primary", "image": "carts"}]
    assert "restarted sockshop-production/carts-primary" in outcome.detail
    await actions.run(Restart(), CARTS, checkpoint=saved[0])  # a resume: the same stamp
    assert deployment["metadata"]["generation"] == 2


async def test_dry_run_calls_nothing(make_actions: MakeActions, cluster: Cluster) -> None:
    actions = await make_actions(dry_run=True)
    outcome = await actions.run(Scale(delta=1), CARTS)
    assert outcome.detail.startswith("dry run, nothing changed: scale sockshop-production/")
    assert outcome.data == {"dry_run": True}
    assert cluster.calls == []


async def test_without_kubernetes_access_the_reason_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kubernetes = await Kubernetes.connect()
    assert kubernetes.unavailable is not None
    assert "no kubeconfig at" in kubernetes.unavailable
    with pytest.raises(PermanentActionError, match="no Kubernetes access"):
        await kubernetes.read_replicas(NS, ("carts-primary",))


# -- retries, as the API server's answers ask for them ----------------------------------------


async def test_a_conflict_is_reread_and_retried_at_once(
    make_actions: MakeActions, cluster: Cluster, sleeps: Sleeps
) -> None:
    cluster.conflicts = 3  # after the planning read, then after each of two attempts' reads
    await (await make_actions()).run(Scale(delta=1), CARTS)
    assert cluster.replicas(NS, "carts-primary") == 2
    assert cluster.count("PATCH", "/scale") == 3
    assert sleeps.delays == [0.0, 0.0]  # no backoff: the next read has the new version


async def test_server_errors_back_off_exponentially(
    make_actions: MakeActions, cluster: Cluster, sleeps: Sleeps
) -> None:
    cluster.fail("PATCH", "/scale", 500)
    cluster.fail("PATCH", "/scale", 503)
    await (await make_actions()).run(Scale(delta=1), CARTS)
    assert sleeps.delays == [BACKOFF, 2 * BACKOFF]
    assert cluster.replicas(NS, "carts-primary") == 2


async def test_throttling_waits_as_long_as_the_server_asks(
    make_actions: MakeActions, cluster: Cluster, sleeps: Sleeps
) -> None:
    cluster.fail("PATCH", "/scale", 429)
    await (await make_actions()).run(Scale(delta=1), CARTS)
    assert sleeps.delays == [1.0]  # Retry-After: 1, not the backoff
    assert cluster.replicas(NS, "carts-primary") == 2


@pytest.mark.parametrize(("status", "words"), [(422, "answered 422"), (400, "answered 400")])
async def test_a_refused_request_is_not_retried(
    make_actions: MakeActions, cluster: Cluster, sleeps: Sleeps, status: int, words: str
) -> None:
    cluster.fail("PATCH", "/scale", status)
    with pytest.raises(PermanentActionError, match=words):
        await (await make_actions()).run(Scale(delta=1), CARTS)
    assert (sleeps.delays, cluster.count("PATCH", "/scale")) == ([], 1)


async def test_wrong_credentials_are_permanent(
    make_actions: MakeActions, kubeconfig: Path, cluster: Cluster, sleeps: Sleeps
) -> None:
    written = yaml.safe_load(await asyncio.to_thread(kubeconfig.read_text))
    kube_url = written["clusters"][0]["cluster"]["server"]
    write_kubeconfig(kubeconfig, kube_url, token="stolen-token")
    with pytest.raises(PermanentActionError, match="rejected the receiver's credentials"):
        await (await make_actions()).run(Scale(delta=1), CARTS)
    assert sleeps.delays == []


async def test_an_api_server_that_refuses_connections_is_retried_then_given_up(
    make_actions: MakeActions, kubeconfig: Path, sleeps: Sleeps
) -> None:
    write_kubeconfig(kubeconfig, f"http://127.0.0.1:{processes.free_port()}")
    with pytest.raises(TemporaryActionError, match="gave up after 3 attempts"):
        await (await make_actions()).run(Scale(delta=1), CARTS)
    assert sleeps.delays == [BACKOFF, 2 * BACKOFF]


async def test_a_request_that_takes_too_long_is_retried(
    make_actions: MakeActions, cluster: Cluster, sleeps: Sleeps
) -> None:
    cluster.delay = 0.5
    with pytest.raises(TemporaryActionError, match="gave up after 2 attempts"):
        await (await make_actions(request_timeout=0.1, action_attempts=2)).run(
            Scale(delta=1), CARTS
        )
    assert sleeps.delays == [BACKOFF]


# -- what tests/actions/test_kubernetes_real.py proves on a real API server, here quickly ------


async def test_an_autoscalers_floor_is_raised_instead_of_the_replicas(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.add_autoscaler(
        NS, "carts-hpa", deployment="carts-primary", min_replicas=1, max_replicas=3
    )
    cluster.roles = None  # the HPA has a name the rendered Role does not know
    outcome = await (await make_actions()).run(Scale(delta=1), CARTS)
    assert outcome.data["kind"] == "autoscaler"
    assert cluster.autoscalers[(NS, "carts-hpa")]["spec"]["minReplicas"] == 2
    assert cluster.replicas(NS, "carts-primary") == 2  # its controller, at once here
    assert cluster.scale_writes() == 0  # the Deployment's replicas were never written


async def test_scaling_down_what_an_autoscaler_owns_is_refused_with_why(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.add_autoscaler(
        NS, "carts-primary", deployment="carts-primary", min_replicas=1, max_replicas=3
    )
    with pytest.raises(PermanentActionError, match="scaling it down would be undone"):
        await (await make_actions()).run(Scale(delta=-1), CARTS)


async def test_rollback_restores_the_previous_revisions_template(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.roles = None
    cluster.add_revision(NS, "carts-primary", 1, image="carts:1")
    cluster.add_revision(NS, "carts-primary", 2, image="carts:2")
    outcome = await (await make_actions()).run(Rollback(), CARTS)
    assert outcome.detail.endswith("from revision 2 to the template of revision 1 (images carts:1)")
    template = cluster.deployments[(NS, "carts-primary")]["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "carts:1"
    assert "pod-template-hash" not in template["metadata"]["labels"]
    (patch,) = [body for method, _, body in cluster.writes if method == "PATCH"]
    assert [op["path"] for op in patch] == ["/spec/template", "/metadata/annotations"]


async def test_events_are_written_about_the_deployment(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    await (await make_actions()).announce(
        CARTS, reason="RemediationScaled", action="Scale", note="scaled"
    )
    (event,) = cluster.events
    assert event["regarding"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "carts-primary"
    }  # fmt: skip
    assert event["metadata"]["name"].startswith("carts-primary.")
