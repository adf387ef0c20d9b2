"""Several replicas on one PostgreSQL journal, as real processes: one leads, any takes
webhooks, and SIGKILL of the leader in the middle of a chain hands it to another within the
lease, each step applied exactly once (counted by the Kubernetes stand-in)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import kube_standin, postgres_server, processes
from tests.conftest import AUTH, payload
from tests.crash_stage import NS, RT, stand_ins

LEASE = 3.0  # short, so that the takeover is quick to test


class Replicas:
    def __init__(
        self,
        receivers: list[processes.AsyncReceiver],
        cluster: kube_standin.Cluster,
        slis: dict[str, float | None],
    ) -> None:
        self.receivers = receivers
        self.cluster = cluster
        self.slis = slis

    async def readiness(self, receiver: processes.AsyncReceiver) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{receiver.url}/readyz") as response,
        ):
            return response.status, await response.json()

    async def role(self, receiver: processes.AsyncReceiver) -> str:
        _, document = await self.readiness(receiver)
        return str(document["role"])

    async def leader(self, within: float = 15.0) -> processes.AsyncReceiver:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            alive = [r for r in self.receivers if r.process and r.process.returncode is None]
            roles = [await self.role(r) for r in alive]
            if roles.count("leader") == 1:
                return alive[roles.index("leader")]
            await asyncio.sleep(0.1)
        raise AssertionError("no single leader")

    async def fire(self, receiver: processes.AsyncReceiver, key: str = "fp-1") -> int:
        body = payload("alertmanager-firing.json")
        body["alerts"][0]["fingerprint"] = key
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{receiver.url}/webhooks/alertmanager", data=json.dumps(body), headers=AUTH
            ) as response,
        ):
            assert response.status == 200, await response.text()
            remediation_id: int = (await response.json())["recorded"][0]["remediation_id"]
            return remediation_id

    async def remediation(
        self, receiver: processes.AsyncReceiver, remediation_id: int
    ) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{receiver.url}/api/v1/remediations/{remediation_id}") as response,
        ):
            document: dict[str, Any] = await response.json()
            return document

    async def leader_killed_in_the_wait(
        self,
    ) -> tuple[processes.AsyncReceiver, int, dict[str, Any]]:
        """A remediation started, its leader SIGKILLed in the wait after the first action:
        (the survivor, the remediation, its document in the wait)."""
        leader = await self.leader()
        (follower,) = [r for r in self.receivers if r is not leader]
        rid = await self.fire(leader)
        waiting = await self.until(follower, rid, lambda d: d["phase"] == "wait")
        assert self.cluster.replicas(NS, "carts-primary") == 2
        await leader.kill()
        return follower, rid, waiting

    async def until(
        self,
        receiver: processes.AsyncReceiver,
        remediation_id: int,
        predicate: Any,
        within: float = 30.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        document: dict[str, Any] = {}
        while time.monotonic() < deadline:
            document = await self.remediation(receiver, remediation_id)
            if predicate(document):
                return document
            await asyncio.sleep(0.05)
        raise AssertionError(f"not reached: {document}")


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, config_dir: Path, store: str, *, count: int, lease: float | None
) -> AsyncIterator[Replicas]:
    """`count` receivers on `store`, with the Kubernetes and Prometheus stand-ins; the lease
    is the default where None (what a user gets)."""
    wait = 4.0 if lease else 14.0  # outlasts the takeover: it happens inside the wait
    async with stand_ins(tmp_path, wait=wait) as around:
        receivers = [
            processes.AsyncReceiver(
                config_dir,
                port=processes.free_port(),
                log=tmp_path / f"receiver-{index}.log",
                # Only the store differs from a single receiver's setup (and a short lease).
                env={"RECEIVER_STORE": store, "POD_NAME": f"receiver-{index}", **around.env}
                | ({"RECEIVER_LEADERSHIP_LEASE": f"{lease:g}s"} if lease else {}),
            )
            for index in range(count)
        ]
        try:
            for receiver in receivers:
                await receiver.start()
            yield Replicas(receivers, around.cluster, around.slis)
        finally:
            for receiver in receivers:
                await receiver.stop()


@pytest.fixture
async def replicas(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    config_dir: Path,
    postgres: postgres_server.Postgres,
) -> AsyncIterator[Replicas]:
    """Two receivers on one database; the lease is short unless the test says."""
    lease: float | None = getattr(request, "param", LEASE)
    async with running(
        tmp_path, config_dir, postgres.create_database(), count=2, lease=lease
    ) as started:
        yield started


async def test_one_leads_and_acts_on_a_webhook_posted_to_the_other(replicas: Replicas) -> None:
    leader = await replicas.leader()
    (follower,) = [r for r in replicas.receivers if r is not leader]
    status, ready = await replicas.readiness(follower)
    assert status == 200
    assert (ready["role"], ready["store"]["backend"]) == ("follower", "postgresql")
    rid = await replicas.fire(follower)  # the follower records it; the leader acts
    waiting = await replicas.until(leader, rid, lambda d: d["phase"] == "wait")
    assert waiting["steps"][0]["result"] == "succeeded"
    assert replicas.cluster.replicas(NS, "carts-primary") == 2
    replicas.slis[RT] = 300.0
    done = await replicas.until(follower, rid, lambda d: d["phase"] == "done")  # read anywhere
    assert done["state"] == "healed"
    assert replicas.cluster.scale_writes() == 1
    metrics = await _text(f"{leader.url}/metrics")
    assert "receiver_leader 1.0" in metrics
    assert "receiver_leader 0.0" in await _text(f"{follower.url}/metrics")


@pytest.mark.parametrize("replicas", [None], indirect=True, ids=["default-lease"])
async def test_the_leader_killed_in_the_wait_is_replaced_and_the_chain_ends_once(
    replicas: Replicas,
) -> None:
    """At the default lease (10 s), as a user runs it."""
    follower, rid, waiting = await replicas.leader_killed_in_the_wait()
    killed_at = time.monotonic()
    replicas.slis[RT] = 300.0
    assert await replicas.leader(within=20) is follower
    took_over = time.monotonic() - killed_at
    # Expected: the lease plus at most a fifth of it (12 s; measured 10.0 s); promised: 20 s.
    assert took_over < 20, f"took {took_over:.1f} s"
    done = await replicas.until(follower, rid, lambda d: d["phase"] == "done")
    assert done["state"] == "healed"
    assert done["steps"][0]["evaluation"]["window"]["end"] >= waiting["phase_until"]
    assert replicas.cluster.scale_writes() == 1  # the wait resumed; nothing applied again
    assert replicas.cluster.replicas(NS, "carts-primary") == 2


async def test_a_resolve_sent_to_a_follower_while_nobody_leads_is_acted_upon(
    replicas: Replicas,
) -> None:
    follower, rid, waiting = await replicas.leader_killed_in_the_wait()
    resolved = payload("alertmanager-resolved.json")
    resolved["alerts"][0]["fingerprint"] = "fp-1"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{follower.url}/webhooks/alertmanager", data=json.dumps(resolved), headers=AUTH
        ) as response,
    ):
        assert response.status == 200  # acknowledged while no replica acts
    replicas.slis[RT] = 300.0
    assert await replicas.leader(within=LEASE * 2 + 5) is follower
    done = await replicas.until(follower, rid, lambda d: d["phase"] == "done")
    # Judged when the new leader took over and found the resolve, not when the wait ran out.
    assert done["state"] == "healed"
    assert done["steps"][0]["evaluation"]["window"]["end"] < waiting["phase_until"]
    assert replicas.cluster.scale_writes() == 1


async def test_an_action_in_flight_when_the_leader_dies_is_not_applied_twice(
    replicas: Replicas,
) -> None:
    leader = await replicas.leader()
    (follower,) = [r for r in replicas.receivers if r is not leader]
    replicas.cluster.write_delay = 1.0  # the scale PATCH is in flight when the leader dies
    rid = await replicas.fire(follower)
    for _ in range(200):
        if replicas.cluster.count("PATCH", "/scale"):
            break
        await asyncio.sleep(0.02)
    assert replicas.cluster.count("PATCH", "/scale") == 1
    await leader.kill()
    for _ in range(100):  # the orphaned PATCH lands after its sender died
        if replicas.cluster.scale_writes():
            break
        await asyncio.sleep(0.02)
    replicas.cluster.write_delay = 0.0
    replicas.slis[RT] = 300.0
    assert await replicas.leader(within=LEASE * 2 + 5) is follower
    done = await replicas.until(follower, rid, lambda d: d["phase"] == "done")
    assert done["state"] == "healed"
    # Re-applied from its journaled absolute target (2), not as a second +1.
    assert replicas.cluster.replicas(NS, "carts-primary") == 2


async def _text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


async def test_a_remediation_goes_on_after_its_database_was_away_longer_than_the_lease(
    tmp_path: Path, config_dir: Path
) -> None:
    """The leader steps down while PostgreSQL is stopped, takes the lease again once it is
    back, reads what is under way again and finishes the chain; nothing applied twice."""
    with postgres_server.running() as database:
        async with running(
            tmp_path, config_dir, database.create_database(), count=1, lease=LEASE
        ) as one:
            (receiver,) = one.receivers
            rid = await one.fire(receiver)
            await one.until(receiver, rid, lambda d: d["phase"] == "wait")
            await asyncio.to_thread(database.stop, "immediate")
            await asyncio.sleep(LEASE + 1)  # long enough to lose the lease
            assert await one.role(receiver) == "follower"
            await asyncio.to_thread(database.start)
            one.slis[RT] = 300.0
            assert await one.leader(within=LEASE * 3) is receiver
            done = await one.until(receiver, rid, lambda d: d["phase"] == "done")
            assert done["state"] == "healed"
            assert one.cluster.scale_writes() == 1
