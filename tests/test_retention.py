"""Retention (store.retention): what ended long ago is pruned in the background — delivered
bodies, closed problems, finished remediations — and what is under way stays, whatever its
age. Evaluations stay as the history relative criteria compare with."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from receiver.journal import EVALUATIONS_KEPT, Pruned, open_journal
from receiver.models import ServiceRef
from tests.conftest import AUTH, journal_url
from tests.engine_world import TWO_RULES, MakeWorld, World

pytestmark = pytest.mark.usefixtures("journal_backend")  # SQLite and PostgreSQL

DAY = 86400.0
RETENTION = 14 * DAY
CARTS = ServiceRef(project="sockshop", stage="production", service="carts")


async def metric(world: World, name: str) -> float:
    text = await (await world.client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def until_gone(world: World, path: str) -> None:
    for _ in range(500):
        if (await world.client.get(path)).status == 404:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} was never pruned")


async def test_what_ended_before_the_retention_is_pruned_and_what_goes_on_stays(
    make_world: MakeWorld,
) -> None:
    world = await make_world(
        TWO_RULES, store_retention=RETENTION, problems_stale_after=0.0, remediation_wait=30 * DAY
    )
    # Day 0: an ignored problem that resolved, a remediation cancelled and resolved, one
    # problem that stays open, and one remediation still waiting after its action.
    await world.fire(key="fp-ignored", service="orders")
    await world.resolve(key="fp-ignored")
    cancelled = (await world.fire(key="fp-cancelled"))["remediation_id"]
    posted = await world.client.post(f"/api/v1/remediations/{cancelled}/cancel", headers=AUTH)
    assert posted.status == 202, await posted.text()
    await world.finished(cancelled)
    await world.resolve(key="fp-cancelled")
    await world.fire(key="fp-open", service="orders")
    waiting = (await world.fire(key="fp-waiting", title="error_rate"))["remediation_id"]
    await world.waiting(waiting, 0)
    assert await metric(world, "receiver_journal_bytes") > 0

    world.clock.advance(RETENTION + DAY)  # the hourly retention round wakes up
    await until_gone(world, f"/api/v1/remediations/{cancelled}")
    await until_gone(world, "/api/v1/problems/fp-ignored")
    await until_gone(world, "/api/v1/problems/fp-cancelled")

    still_open = await (await world.client.get("/api/v1/problems/fp-open")).json()
    assert still_open["state"] == "open"
    assert still_open["notifications"] == []  # its old bodies went; the row keeps its counts
    under_way = await world.get(waiting)
    assert (under_way["state"], under_way["phase"]) == ("running", "wait")
    assert [step["result"] for step in under_way["steps"]] == ["succeeded"]
    listed = await (await world.client.get("/api/v1/remediations")).json()
    assert [r["id"] for r in listed["remediations"]] == [waiting]
    assert await metric(world, 'receiver_journal_pruned_total{kind="remediations"}') == 1
    assert await metric(world, 'receiver_journal_pruned_total{kind="problems"}') == 2

    # What arrives now is kept, and repeats of the old open problem still count on it.
    await world.fire(key="fp-open", service="orders")
    again = await (await world.client.get("/api/v1/problems/fp-open")).json()
    assert (again["repeats"], len(again["notifications"])) == (1, 1)


async def test_evaluations_are_kept_as_history_up_to_the_newest_of_each_service(
    tmp_path: Path,
) -> None:
    now = [0.0]
    journal = open_journal(journal_url(tmp_path), clock=lambda: now[0])
    await journal.open()
    lease = journal.leadership("test", 10.0)  # evaluations are the engine's: the leader's
    assert await lease.acquire()
    try:
        for index in range(EVALUATIONS_KEPT + 5):
            now[0] = float(index)
            await journal.record_evaluation(
                CARTS,
                window_start=0.0,
                window_end=1.0,
                result="pass",
                score=100.0,
                values={"response_time_p90": float(index)},
                detail={},
            )
        now[0] = 10 * RETENTION
        pruned = await journal.prune(now[0] - RETENTION)
        assert pruned == Pruned(evaluations=5)
        history = await journal.previous_evaluations(CARTS, results=["pass"], limit=1000)
        assert len(history) == EVALUATIONS_KEPT
        assert history[-1][1] == {"response_time_p90": 5.0}  # the oldest five went
        assert await journal.prune(now[0] - RETENTION) == Pruned()
    finally:
        await lease.release()
        await journal.close()
