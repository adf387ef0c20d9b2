"""Problems that went stale — no notification within problems.stale_after — are closed as
expired with the reason, and the remediation they were for stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine_world import MakeWorld, World

pytestmark = pytest.mark.usefixtures("journal_backend")  # SQLite and PostgreSQL

HOUR = 3600.0
LONG_WAIT = 10 * HOUR  # the remediation is still waiting when its problem goes stale


async def advance(world: World, seconds: float) -> None:
    """Move the clock once the engine sleeps again: the remediation's wait and the expiry
    round (otherwise a round still busy would miss the tick)."""
    await world.until(1, lambda d: world.clock.sleepers == 2, "both asleep")
    world.clock.advance(seconds)


async def test_a_stale_problem_expires_and_stops_its_remediation(make_world: MakeWorld) -> None:
    world = await make_world(problems_stale_after=HOUR, remediation_wait=LONG_WAIT)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    await advance(world, HOUR - 60)
    assert (await world.fire())["outcome"] == "repeated"  # Alertmanager resends: still alive
    await advance(world, HOUR - 60)
    assert (await world.get(rid))["problem_state"] == "open"
    await advance(world, 120)  # now an hour without a word
    done = await world.finished(rid)
    assert (done["state"], done["reason"]) == (
        "expired",
        "its problems expired (no notification within problems.stale_after) after 1 action",
    )
    problem = await (await world.client.get("/api/v1/problems/fp-1")).json()
    assert (problem["state"], problem["ignored_reason"]) == (
        "expired",
        "expired: no notification for 3600s",
    )
    listed = await (await world.client.get("/api/v1/problems?state=expired")).json()
    assert [p["key"] for p in listed["problems"]] == ["fp-1"]
    # A later firing of the same alert is a new occurrence, with a remediation of its own.
    again = await world.fire()
    assert (again["outcome"], again["remediation_id"] not in (None, rid)) == ("opened", True)


async def test_problems_without_a_remediation_expire_too(make_world: MakeWorld) -> None:
    world = await make_world(problems_stale_after=HOUR)
    ignored = await world.fire(service="orders")  # no remediation.yaml: recorded only
    assert ignored["remediation_id"] is None
    await world.until_problem("fp-1", lambda p: world.clock.sleepers == 1, "expiry asleep")
    world.clock.advance(HOUR + 60)
    await world.until_problem("fp-1", lambda p: p["state"] == "expired", "its expiry")


async def test_a_problem_that_expired_while_down_stops_its_remediation_at_start(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world = await make_world(problems_stale_after=0.0, remediation_wait=LONG_WAIT)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    await world.client.close()
    world.clock.advance(2 * HOUR)
    restarted = await make_world(
        restart=world, problems_stale_after=HOUR, remediation_wait=LONG_WAIT
    )
    done = await restarted.finished(rid)
    assert done["state"] == "expired"
