"""Reaction time: from a webhook sent to the first action arriving at the Kubernetes API.

The receiver runs as its own process (durable journal, synchronous=FULL) with N services,
each with a `scaling` rule; the Kubernetes stand-in runs here and notes when each scale
PATCH arrives (before it does any work of its own, so its latency is excluded). Problems go
to different services, so they are not serialized behind each other.

Two runs: one problem at a time (the latency a single incident sees), and all at once
(a burst, e.g. an outage that fires every alert).

    python bench/remediate.py [--problems 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import kube_standin, processes  # noqa: E402
from tests.conftest import AUTH, PAYLOADS, TOKEN  # noqa: E402

NS = "bench-production"


def write_config(root: Path, services: int) -> None:
    for index in range(services):
        service = root / "bench" / "production" / f"svc{index}"
        service.mkdir(parents=True)
        (service / "remediation.yaml").write_text(
            "remediations:\n- name: slow\n  actions:\n  - {action: scaling, value: +1}\n"
        )


def webhook(index: int) -> bytes:
    body: dict[str, Any] = json.loads((PAYLOADS / "alertmanager-firing.json").read_text())
    alert = body["alerts"][0]
    alert["fingerprint"] = f"bench-{index}"
    alert["annotations"]["summary"] = "slow responses"
    alert["labels"] |= {"project": "bench", "stage": "production", "service": f"svc{index}"}
    return json.dumps(body).encode()


async def send(session: aiohttp.ClientSession, url: str, index: int) -> float:
    started = time.monotonic()
    async with session.post(url, data=webhook(index), headers=AUTH) as response:
        assert response.status == 200, await response.text()
    return started


async def collect(
    cluster: kube_standin.Cluster, sent: dict[int, float], *, within: float
) -> list[float]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        arrived = {
            index: cluster.first_call.get(
                ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/svc{index}-primary/scale")
            )
            for index in sent
        }
        if all(arrived.values()):
            return [arrived[i] - sent[i] for i in sent]  # type: ignore[operator]
        await asyncio.sleep(0.05)
    raise TimeoutError("not every problem reached the Kubernetes API")


def report(name: str, delays: list[float]) -> None:
    ordered = sorted(delays)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(
        f"{name:<22} n={len(ordered):4d}  p50 {statistics.median(ordered) * 1000:6.1f} ms"
        f"  p99 {p99 * 1000:6.1f} ms  max {ordered[-1] * 1000:6.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=200)
    args = parser.parse_args()
    count = args.problems
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config"
        write_config(config, 2 * count)
        # The RBAC `receiver manifests` renders for this configuration, as a user applies it.
        cluster = kube_standin.Cluster(roles=kube_standin.roles_for(config))
        for index in range(2 * count):
            cluster.add_deployment(NS, f"svc{index}-primary", replicas=1)
        kube = TestServer(kube_standin.create_app(cluster))
        await kube.start_server()
        kubeconfig = kube_standin.write_kubeconfig(Path(tmp) / "kubeconfig", str(kube.make_url("")))
        receiver = processes.AsyncReceiver(
            config,
            port=processes.free_port(),
            log=Path(tmp) / "receiver.log",
            env={
                "RECEIVER_STORE": f"{tmp}/journal.db",
                "RECEIVER_AUTH_TOKEN": TOKEN,
                "KUBECONFIG": str(kubeconfig),
                "RECEIVER_LOG_LEVEL": "warning",
            },
        )
        await receiver.start()
        url = f"{receiver.url}/webhooks/alertmanager"
        try:
            async with aiohttp.ClientSession() as session:
                sequential = {}
                for index in range(count):
                    sequential[index] = await send(session, url, index)
                    await asyncio.sleep(0.01)
                report("one at a time", await collect(cluster, sequential, within=60))
                indexes = range(count, 2 * count)
                starts = await asyncio.gather(*(send(session, url, i) for i in indexes))
                burst = dict(zip(indexes, starts, strict=True))
                report(f"burst of {count}", await collect(cluster, burst, within=120))
        finally:
            await receiver.stop()
            await kube.close()


if __name__ == "__main__":
    asyncio.run(main())
