"""Scaling and restart through kubernetes-asyncio against the API server stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from receiver.actions.kubernetes import RESTARTED_AT, Kubernetes
from receiver.errors import PermanentActionError, TemporaryActionError
from receiver.models import Restart, Scale, ServiceRef
from receiver.settings import ServiceTarget
from tests.actions.conftest import CARTS, MakeActions
from tests.kube_standin import Cluster

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


async def test_a_service_can_name_its_own_target_and_bounds(
    make_actions: MakeActions, cluster: Cluster
) -> None:
    cluster.add_deployment("shop", "cart-service", replicas=3)
    orders = ServiceRef(project="sockshop", stage="production", service="orders")
    actions = await make_actions(
        services={
            str(orders): ServiceTarget(namespace="shop", deployment="cart-service", max_replicas=4),
        }
    )
    await actions.run(Scale(delta=1), orders)
    assert cluster.replicas("shop", "cart-service") == 4
    with pytest.raises(PermanentActionError, match="at maximum 4 replicas"):
        await actions.run(Scale(delta=1), orders)


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
    make_actions: MakeActions, cluster: Cluster
) -> None:
    actions = await make_actions()
    saved: list[dict[str, Any]] = []

    async def save(plan: dict[str, Any]) -> None:
        saved.append(plan)

    outcome = await actions.run(Restart(), CARTS, save=save)
    deployment = cluster.deployments[(NS, "carts-primary")]
    stamp = deployment["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert stamp == saved[0]["restarted_at"]
    assert deployment["metadata"]["generation"] == 2
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
