"""Kill -9 in the middle of a remediation; after a restart it completes, each action applied
exactly once (counted by the Kubernetes stand-in)."""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
import time
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


@pytest.fixture
async def stage(tmp_path: Path, config_dir: Path) -> AsyncIterator[Stage]:
    cluster = kube_standin.Cluster()
    cluster.add_deployment(NS, "carts-primary", replicas=1)
    slis: dict[str, float | None] = {RT: 900.0, ERRORS: 0.0}
    kube = TestServer(kube_standin.create_app(cluster))
    prometheus = TestServer(prometheus_standin.create_app(slis))
    await kube.start_server()
    await prometheus.start_server()
    kubeconfig = kube_standin.write_kubeconfig(tmp_path / "kubeconfig", str(kube.make_url("")))
    receiver = processes.AsyncReceiver(
        config_dir,
        port=processes.free_port(),
        log=tmp_path / "receiver.log",
        env={
            "RECEIVER_STORE": str(tmp_path / "journal.db"),
            "RECEIVER_AUTH_TOKEN": TOKEN,
            "KUBECONFIG": str(kubeconfig),
            "RECEIVER_PROMETHEUS_URL": str(prometheus.make_url("")),
            "RECEIVER_REMEDIATION_WAIT": f"{WAIT:g}s",
            "RECEIVER_REMEDIATION_COOLDOWN": "0s",
            "RECEIVER_REMEDIATION_EVALUATION_WINDOW": "2s",
        },
    )
    await receiver.start()
    yield Stage(receiver, cluster, slis)
    await receiver.stop()
    await kube.close()
    await prometheus.close()


def scale_writes(cluster: kube_standin.Cluster) -> int:
    return sum(1 for method, path, _ in cluster.writes if path.endswith("/scale"))


def moment(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_killed_during_the_wait_it_resumes_the_rest_of_the_wait(stage: Stage) -> None:
    rid = await stage.fire()
    waiting = await stage.until(rid, lambda d: d["phase"] == "wait")
    assert stage.cluster.replicas(NS, "carts-primary") == 2
    until = moment(waiting["phase_until"])
    assert until - time.time() > WAIT - 1  # killed early in the wait
    await asyncio.sleep(0.5)
    await stage.receiver.kill()
    stage.slis[RT] = 300.0  # the new replica helped
    await stage.receiver.start()
    resumed = await stage.until(rid, lambda d: True)
    assert (resumed["phase"], resumed["phase_until"]) == ("wait", waiting["phase_until"])
    done = await stage.until(rid, lambda d: d["phase"] == "done")
    assert done["state"] == "healed"
    judged_at = moment(done["steps"][0]["evaluation"]["window"]["end"])
    # Judged when the first wait ran out: not at the restart, not after a whole new wait.
    assert until <= judged_at < until + 1.0
    assert stage.cluster.replicas(NS, "carts-primary") == 2
    assert scale_writes(stage.cluster) == 1  # applied exactly once


async def test_killed_between_action_start_and_result_it_never_adds_a_second_delta(
    stage: Stage,
) -> None:
    stage.cluster.write_delay = 1.0  # the scale PATCH is in flight when the receiver dies
    rid = await stage.fire()
    for _ in range(200):
        if stage.cluster.count("PATCH", "/scale"):
            break
        await asyncio.sleep(0.02)
    assert stage.cluster.count("PATCH", "/scale") == 1, "the PATCH never left the receiver"
    assert scale_writes(stage.cluster) == 0  # in flight: not applied yet
    document = await stage.until(rid, lambda d: True)
    assert document["steps"][0]["result"] == "started"
    await stage.receiver.kill()
    for _ in range(100):  # the orphaned PATCH lands after its sender died
        if scale_writes(stage.cluster):
            break
        await asyncio.sleep(0.02)
    assert scale_writes(stage.cluster) == 1, "the orphaned PATCH never landed"
    assert stage.cluster.replicas(NS, "carts-primary") == 2
    stage.cluster.write_delay = 0.0
    stage.slis[RT] = 300.0
    await stage.receiver.start()
    done = await stage.until(rid, lambda d: d["phase"] == "done")
    assert done["state"] == "healed"
    assert stage.cluster.replicas(NS, "carts-primary") == 2  # not 3
    assert scale_writes(stage.cluster) == 1
    (step,) = done["steps"]
    assert step["result"] == "succeeded"


async def test_killed_while_queued_behind_another_remediation_both_complete(stage: Stage) -> None:
    first = await stage.fire()
    # Another rule of the same service (a problem of the same rule would join the first).
    second = await stage.fire(key="second", title="Response time degradation")
    await stage.until(first, lambda d: d["phase"] == "wait")
    await stage.receiver.kill()
    await stage.receiver.start()
    await stage.until(first, lambda d: d["phase"] == "done")
    await stage.until(second, lambda d: d["phase"] == "done", within=30)
    assert scale_writes(stage.cluster) == 2  # one per remediation, in order
    assert stage.cluster.replicas(NS, "carts-primary") == 3


async def receiver_status(url: str, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiver",
        "status",
        "--url",
        url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=processes.receiver_env(),
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_status_prints_the_table_and_a_timeline(stage: Stage) -> None:
    rid = await stage.fire()
    await stage.until(rid, lambda d: d["phase"] == "wait")
    stage.slis[RT] = 300.0
    await stage.until(rid, lambda d: d["phase"] == "done")
    table = await receiver_status(stage.receiver.url)
    header, row = table.splitlines()
    assert header.split() == ["ID", "STATE", "SERVICE", "PROBLEM", "STEPS", "STARTED", "WHY"]
    assert row.split()[:5] == [
        str(rid),
        "healed",
        "sockshop/production/carts",
        "response_time_p90",
        "scaling:succeeded",
    ]
    timeline = await receiver_status(stage.receiver.url, str(rid))
    assert f"remediation {rid}: healed — scaling (step 1) healed it" in timeline
    assert '1. scaling "1": succeeded' in timeline
    assert "scaled sockshop-production/carts-primary from 1 to 2 replicas" in timeline
    assert "SLO pass (score 100.0)" in timeline
    assert "response_time_p90: 300.0 → pass" in timeline
