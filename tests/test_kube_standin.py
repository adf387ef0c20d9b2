"""The Kubernetes stand-in refuses what a real API server refuses (its docstring is the
contract); these tests keep it honest, so that the adapter tests mean something."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests import kube_standin

NS = "sockshop-production"
DEPLOYMENT = f"/apis/apps/v1/namespaces/{NS}/deployments/carts-primary"
AUTH = {"Authorization": f"Bearer {kube_standin.TOKEN}"}


@pytest.fixture
def cluster() -> kube_standin.Cluster:
    cluster = kube_standin.Cluster()
    cluster.add_deployment(NS, "carts-primary", replicas=1)
    return cluster


@pytest.fixture
async def api(cluster: kube_standin.Cluster) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    server = TestServer(kube_standin.create_app(cluster))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield session, str(server.make_url(""))
    await server.close()


async def send(
    api: tuple[aiohttp.ClientSession, str], method: str, path: str, body: Any, content_type: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    session, url = api
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = AUTH | {"Content-Type": content_type}
    async with session.request(method, url.rstrip("/") + path, data=data, headers=headers) as r:
        return r.status, await r.json(), dict(r.headers)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
async def test_a_patch_of_an_unknown_type_is_refused_with_415(
    api: Any, cluster: kube_standin.Cluster, content_type: str
) -> None:
    body = {"spec": {"replicas": 3}}
    status, answer, _ = await send(api, "PATCH", DEPLOYMENT + "/scale", body, content_type)
    assert (status, answer["reason"]) == (415, "UnsupportedMediaType")
    assert cluster.replicas(NS, "carts-primary") == 1


async def test_a_json_patch_is_applied_as_a_list_of_operations(
    api: Any, cluster: kube_standin.Cluster
) -> None:
    operations = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 2},
    ]
    status, answer, _ = await send(
        api, "PATCH", DEPLOYMENT + "/scale", operations, kube_standin.JSON_PATCH
    )
    assert (status, answer["spec"]["replicas"]) == (200, 2)
    status, answer, _ = await send(
        api, "PATCH", DEPLOYMENT + "/scale", operations, kube_standin.JSON_PATCH
    )
    assert (status, answer["reason"]) == (422, "Invalid")  # the test operation failed
    assert cluster.replicas(NS, "carts-primary") == 2


async def test_a_strategic_merge_patch_merges_containers_by_name_a_merge_patch_replaces_them(
    api: Any, cluster: kube_standin.Cluster
) -> None:
    cluster.roles = None  # about patch semantics, not RBAC
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "carts-primary"}]}}}}
    status, answer, _ = await send(
        api, "PATCH", DEPLOYMENT, patch, kube_standin.STRATEGIC_MERGE_PATCH
    )
    containers = answer["spec"]["template"]["spec"]["containers"]
    assert (status, containers) == (200, [{"name": "carts-primary", "image": "carts"}])
    status, answer, _ = await send(api, "PATCH", DEPLOYMENT, patch, kube_standin.MERGE_PATCH)
    assert answer["spec"]["template"]["spec"]["containers"] == [{"name": "carts-primary"}]


async def test_a_verb_the_generated_role_does_not_grant_is_forbidden(
    api: Any, cluster: kube_standin.Cluster
) -> None:
    scale = {"metadata": {"resourceVersion": "1001"}, "spec": {"replicas": 5}}
    status, answer, _ = await send(api, "PUT", DEPLOYMENT + "/scale", scale, "application/json")
    assert (status, answer["reason"]) == (403, "Forbidden")
    assert 'cannot update resource "deployments/scale"' in answer["message"]
    cluster.add_deployment("elsewhere", "carts", replicas=1)
    other = "/apis/apps/v1/namespaces/elsewhere/deployments/carts/scale"
    status, answer, _ = await send(api, "PATCH", other, {}, kube_standin.MERGE_PATCH)
    assert (status, answer["reason"]) == (403, "Forbidden")  # no Role in that namespace
    # Only the configured Deployments, only what the example's actions use (scaling): not a
    # Deployment of another service, not a patch of the Deployment itself (its image).
    cluster.add_deployment(NS, "orders", replicas=1)
    orders = f"/apis/apps/v1/namespaces/{NS}/deployments/orders/scale"
    status, answer, _ = await send(api, "PATCH", orders, scale, kube_standin.MERGE_PATCH)
    assert (status, answer["reason"]) == (403, "Forbidden")
    image = {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "evil"}]}}}}
    status, answer, _ = await send(api, "PATCH", DEPLOYMENT, image, kube_standin.MERGE_PATCH)
    assert (status, answer["reason"]) == (403, "Forbidden")
    assert 'cannot patch resource "deployments"' in answer["message"]
    assert cluster.replicas(NS, "carts-primary") == 1
    assert cluster.deployments[(NS, "carts-primary")]["spec"]["template"]["spec"]["containers"] == [
        {"name": "carts-primary", "image": "carts"}
    ]


async def test_a_body_that_is_not_json_is_a_400_not_a_500(api: Any) -> None:
    status, answer, _ = await send(
        api, "PATCH", DEPLOYMENT + "/scale", b"{not json", kube_standin.MERGE_PATCH
    )
    assert (status, answer["reason"]) == (400, "BadRequest")


async def test_throttling_says_when_to_come_back(api: Any, cluster: kube_standin.Cluster) -> None:
    cluster.fail("PATCH", "/scale", 429)
    status, answer, headers = await send(
        api, "PATCH", DEPLOYMENT + "/scale", {"spec": {"replicas": 2}}, kube_standin.MERGE_PATCH
    )
    assert (status, answer["reason"], headers["Retry-After"]) == (429, "TooManyRequests", "1")
    assert answer["details"]["retryAfterSeconds"] == 1
