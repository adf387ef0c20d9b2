"""SIGKILL at random moments of an alert storm: every acknowledged alert is in the journal
after the restarts, and no remediation acted twice (each scale applied once, counted by the
Kubernetes stand-in)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import aiohttp

from tests.conftest import AUTH, payload
from tests.crash_stage import NS, Stage

RULES = ("response_time_p90", "Response time degradation")  # two scaling rules of carts


def storm_body(batch: int) -> bytes:
    body = payload("alertmanager-firing.json")
    template = body["alerts"][0]
    body["alerts"] = [
        template
        | {
            "fingerprint": f"b{batch}a{index}",
            "labels": template["labels"] | {"pod_name": f"carts-{batch}-{index}"},
            "annotations": template["annotations"] | {"summary": RULES[batch % 2]},
        }
        for index in range(10)
    ]
    return json.dumps(body).encode()


async def send(url: str, acknowledged: set[str], stop: asyncio.Event) -> None:
    """Post new batches until told to stop; keep the keys of every batch answered 200."""
    batch = len(acknowledged) // 10
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            body = storm_body(batch)
            try:
                async with session.post(
                    f"{url}/webhooks/alertmanager", data=body, headers=AUTH
                ) as response:
                    if response.status == 200:
                        acknowledged.update(f"b{batch}a{i}" for i in range(10))
                        batch += 1
            except aiohttp.ClientError:
                await asyncio.sleep(0.02)  # the receiver is down: Alertmanager retries too


async def test_every_acknowledged_alert_survives_kills_during_a_storm(stage: Stage) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    acknowledged: set[str] = set()
    for _ in range(3):
        stop = asyncio.Event()
        sender = asyncio.create_task(send(stage.receiver.url, acknowledged, stop))
        await asyncio.sleep(chance.uniform(0.2, 1.2))
        await stage.receiver.kill()
        stop.set()
        await sender
        await stage.receiver.start()
    assert len(acknowledged) >= 30, f"seed {seed}: the storm hardly got through"
    async with aiohttp.ClientSession() as session:

        async def found(key: str) -> bool:
            async with session.get(f"{stage.receiver.url}/api/v1/problems/{key}") as response:
                return response.status == 200

        keys = sorted(acknowledged)
        present = await asyncio.gather(*(found(key) for key in keys))
        async with session.get(
            f"{stage.receiver.url}/api/v1/remediations", params={"limit": "1000"}
        ) as response:
            remediations: list[dict[str, Any]] = (await response.json())["remediations"]
    missing = [key for key, there in zip(keys, present, strict=True) if not there]
    assert not missing, f"seed {seed}: acknowledged but lost: {missing[:5]}"
    # The storm is two rules of one service: at most one remediation per rule at a time.
    active = [r for r in remediations if r["state"] in ("pending", "running")]
    assert len({r["rule"] for r in active}) == len(active), f"seed {seed}: {active}"
    for remediation in remediations:
        scalings = [s for s in remediation["steps"] if s["action"] == "scaling"]
        assert len(scalings) <= 1, f"seed {seed}: {remediation}"
    assert stage.cluster.scale_writes() <= len(remediations), f"seed {seed}: a second delta"
    assert stage.cluster.replicas(NS, "carts-primary") == 1 + stage.cluster.scale_writes()
