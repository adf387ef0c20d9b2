"""The receiver on the example configuration with everything it talks to — the Kubernetes,
Prometheus and escalation stand-ins — and a clock the test moves by hand; restartable on the
same journal, cluster and clock (`make_world(restart=world)`), for recovery tests."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import prometheus_client as prom
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient

from receiver import configuration, server
from tests import kube_standin, prometheus_standin
from tests.conftest import AUTH, make_settings, payload
from tests.fakeclock import FakeClock

NS = "sockshop-production"
WAIT = 600.0
RT, ERRORS = prometheus_standin.response_time_p90(), prometheus_standin.error_rate()
SLOW: dict[str, float | None] = {RT: 900.0, ERRORS: 0.0}  # p90 fails (<600), errors ok
FAST: dict[str, float | None] = {RT: 300.0, ERRORS: 0.0}


def over(window: str, values: dict[str, float | None]) -> dict[str, float | None]:
    """SLI values (SLOW, FAST) as they are queried over another window than 600s, e.g. the
    minute after an action when its problem resolved soon after it."""
    return {
        prometheus_standin.response_time_p90(window): values[RT],
        prometheus_standin.error_rate(window): values[ERRORS],
    }


TWO_RULES = """
remediations:
- name: response_time_p90
  actions: [{action: scaling, value: +1}]
- name: error_rate
  actions: [{action: scaling, value: +1}]
"""  # two rules of one service: their remediations queue one behind the other

TWO_ACTIONS = """
apiVersion: spec.keptn.sh/0.1.4
kind: Remediation
spec:
  remediations:
  - problemType: response_time_p90
    actionsOnOpen:
    - {action: scaling, name: scaling, value: "1"}
    - {action: restart, name: restart}
  - problemType: default
    actionsOnOpen:
    - {action: escalate, name: escalate}
"""


class World:
    """The receiver and everything it talks to, for one test."""

    def __init__(
        self,
        client: TestClient[Any, Any],
        clock: FakeClock,
        cluster: kube_standin.Cluster,
        slis: dict[str, float | None],
        escalations: list[dict[str, Any]],
        urls: dict[str, str],
    ) -> None:
        self.client = client
        self.urls = urls
        self.clock = clock
        self.cluster = cluster
        self.slis = slis
        self.queries: list[tuple[str, float | None]] = []  # what Prometheus was asked, and when
        self.escalations = escalations

    async def fire(
        self,
        title: str = "response_time_p90",
        key: str = "fp-1",
        status: str = "firing",
        service: str = "carts",
    ) -> dict[str, Any]:
        body = payload("alertmanager-firing.json")
        alert = copy.deepcopy(body["alerts"][0])
        alert.update(status=status, fingerprint=key)
        alert["annotations"]["summary"] = title
        alert["labels"]["service"] = service
        body["alerts"] = [alert]
        response = await self.client.post(
            "/webhooks/alertmanager", data=json.dumps(body), headers=AUTH
        )
        assert response.status == 200, await response.text()
        recorded: dict[str, Any] = (await response.json())["recorded"][0]
        return recorded

    async def resolve(self, key: str = "fp-1") -> None:
        await self.fire(key=key, status="resolved")

    async def get(self, remediation_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/remediations/{remediation_id}")
        assert response.status == 200
        document: dict[str, Any] = await response.json()
        return document

    async def until(
        self, remediation_id: int, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        for _ in range(500):
            document = await self.get(remediation_id)
            if predicate(document):
                return document
            await asyncio.sleep(0.01)
        raise AssertionError(f"remediation {remediation_id} never reached {what}: {document}")

    async def until_problem(
        self, key: str, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        for _ in range(500):
            response = await self.client.get(f"/api/v1/problems/{key}")
            document: dict[str, Any] = await response.json()
            if predicate(document):
                return document
            await asyncio.sleep(0.01)
        raise AssertionError(f"problem {key} never reached {what}: {document}")

    async def waiting(self, remediation_id: int, step: int) -> dict[str, Any]:
        document = await self.until(
            remediation_id,
            lambda d: (
                d["phase"] == "wait" and d["current_step"] == step and self.clock.sleepers > 0
            ),
            f"the wait after step {step}",
        )
        return document

    async def finished(self, remediation_id: int) -> dict[str, Any]:
        return await self.until(remediation_id, lambda d: d["phase"] == "done", "its end")

    async def scaled_back(self, remediation_id: int) -> dict[str, Any]:
        """Once the scale-back, the step after its one action, has its result."""
        return await self.until(
            remediation_id,
            lambda d: len(d["steps"]) == 2 and d["steps"][1]["result"] != "started",
            "the end of the scale-back",
        )


MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    config_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[MakeWorld]:
    """`make_world(remediation_yaml, slo=True, **settings)`; with `restart=world`, the same
    receiver started again on the same journal, stand-ins and clock (close the first one's
    client before: that is the crash)."""
    servers: list[TestServer] = []

    async def make(
        remediation: str | None = None,
        *,
        slo: bool = True,
        restart: World | None = None,
        **settings: Any,
    ) -> World:
        carts = config_dir / "sockshop" / "production" / "carts"
        if remediation is not None:
            (carts / "remediation.yaml").write_text(remediation)
        if not slo:
            (carts / "slo.yaml").unlink(missing_ok=True)
        if restart is not None:
            cluster, slis, escalations = restart.cluster, restart.slis, restart.escalations
            clock, urls, queries = restart.clock, restart.urls, restart.queries
        else:
            # The RBAC `receiver manifests` renders for this configuration: what it grants
            # follows from the actions of its rules.
            cluster = kube_standin.Cluster(roles=kube_standin.roles_for(config_dir))
            cluster.add_deployment(NS, "carts-primary", replicas=1)
            slis = dict(SLOW)
            escalations = []
            clock = FakeClock()
            urls, queries = await _stand_ins(cluster, slis, escalations, servers)
        kubeconfig = kube_standin.write_kubeconfig(tmp_path / "kubeconfig", urls["kubernetes"])
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        app = server.create_app(
            configuration.with_settings(
                config_dir,
                make_settings(
                    tmp_path,
                    **{
                        "prometheus_url": urls["prometheus"],
                        "escalation_webhook_url": urls["escalation"],
                        "remediation_wait": WAIT,
                        "remediation_cooldown": 0.0,
                        "action_backoff": 0.0,
                    }
                    | settings,
                ),
            ),
            registry=prom.CollectorRegistry(),
            clock=clock,
        )
        client = await aiohttp_client(app)
        world = World(client, clock, cluster, slis, escalations, urls)
        world.queries = queries
        return world

    yield make
    for started in servers:
        await started.close()


async def _stand_ins(
    cluster: kube_standin.Cluster,
    slis: dict[str, float | None],
    escalations: list[dict[str, Any]],
    servers: list[TestServer],
) -> tuple[dict[str, str], list[tuple[str, float | None]]]:
    async def escalate(request: web.Request) -> web.Response:
        escalations.append(await request.json())
        return web.Response(text="ok")

    hook = web.Application()
    hook.router.add_post("/hook", escalate)
    kube = TestServer(kube_standin.create_app(cluster))
    prometheus = TestServer(prometheus_standin.create_app(slis))
    hook_server = TestServer(hook)
    for started in (kube, prometheus, hook_server):
        await started.start_server()
        servers.append(started)
    urls = {
        "kubernetes": str(kube.make_url("")),
        "prometheus": str(prometheus.make_url("")),
        "escalation": str(hook_server.make_url("/hook")),
    }
    return urls, prometheus.app[prometheus_standin.QUERIES]
