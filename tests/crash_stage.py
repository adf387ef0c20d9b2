"""A receiver in its own process on the example configuration, with the Kubernetes and
Prometheus stand-ins, that a test can SIGKILL and start again on the same journal (the
`stage` fixture of the crash tests)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests import kube_standin, processes, prometheus_standin
from tests.conftest import AUTH, TOKEN, payload

NS = "sockshop-production"
RT, ERRORS = prometheus_standin.response_time_p90("2s"), prometheus_standin.error_rate("2s")
WAIT = 3.0  # after each action; long enough to tell "the rest of it" from "all of it again"


class Stage:
    def __init__(
        self,
        receiver: processes.AsyncReceiver,
        cluster: kube_standin.Cluster,
        slis: dict[str, float | None],
    ) -> None:
        self.receiver = receiver
        self.cluster = cluster
        self.slis = slis

    async def fire(self, key: str | None = None, title: str | None = None) -> int:
        body = payload("alertmanager-firing.json")
        if key is not None:
            body["alerts"][0]["fingerprint"] = key
        if title is not None:
            body["alerts"][0]["annotations"]["summary"] = title
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.receiver.url}/webhooks/alertmanager",
                data=json.dumps(body),
                headers=AUTH,
            ) as response,
        ):
            assert response.status == 200
            remediation_id: int = (await response.json())["recorded"][0]["remediation_id"]
            return remediation_id

    async def until(
        self, remediation_id: int, predicate: Callable[[dict[str, Any]], bool], within: float = 20
    ) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            for _ in range(int(within / 0.05)):
                async with session.get(
                    f"{self.receiver.url}/api/v1/remediations/{remediation_id}"
                ) as response:
                    document: dict[str, Any] = await response.json()
                if predicate(document):
                    return document
                await asyncio.sleep(0.05)
        raise AssertionError(f"not reached: {document}")


@dataclasses.dataclass
class StandIns:
    """A Kubernetes with carts-primary at 1 replica, a Prometheus answering `slis`, and the
    environment that points a receiver at them (with short waits)."""

    cluster: kube_standin.Cluster
    slis: dict[str, float | None]
    env: dict[str, str]


@contextlib.asynccontextmanager
async def stand_ins(tmp_path: Path, *, wait: float = WAIT) -> AsyncIterator[StandIns]:
    cluster = kube_standin.Cluster()
    cluster.add_deployment(NS, "carts-primary", replicas=1)
    slis: dict[str, float | None] = {RT: 900.0, ERRORS: 0.0}
    kube = TestServer(kube_standin.create_app(cluster))
    prometheus = TestServer(prometheus_standin.create_app(slis))
    await kube.start_server()
    await prometheus.start_server()
    kubeconfig = kube_standin.write_kubeconfig(tmp_path / "kubeconfig", str(kube.make_url("")))
    try:
        yield StandIns(
            cluster,
            slis,
            {
                "RECEIVER_AUTH_TOKEN": TOKEN,
                "KUBECONFIG": str(kubeconfig),
                "RECEIVER_PROMETHEUS_URL": str(prometheus.make_url("")),
                "RECEIVER_REMEDIATION_WAIT": f"{wait:g}s",
                "RECEIVER_REMEDIATION_COOLDOWN": "0s",
                "RECEIVER_REMEDIATION_EVALUATION_WINDOW": "2s",
                # A resolve is judged once the window can be measured after the action.
                "RECEIVER_REMEDIATION_MIN_EVALUATION_WINDOW": "2s",
            },
        )
    finally:
        await kube.close()
        await prometheus.close()


@pytest.fixture
async def stage(tmp_path: Path, config_dir: Path) -> AsyncIterator[Stage]:
    async with stand_ins(tmp_path) as around:
        receiver = processes.AsyncReceiver(
            config_dir,
            port=processes.free_port(),
            log=tmp_path / "receiver.log",
            env={"RECEIVER_STORE": str(tmp_path / "journal.db"), **around.env},
        )
        await receiver.start()
        yield Stage(receiver, around.cluster, around.slis)
        await receiver.stop()


def moment(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
