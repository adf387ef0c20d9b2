"""A journal written by the version before the engine became a state machine (0.1.0, kept as
an SQL dump in tests/data/journal-v1.sql) opens, and what it left unfinished resumes:

- remediation 1 healed by scaling carts-primary 1 → 2; its scale-back waits for the resolve;
- remediation 2 scaled 2 → 3 (not healed), restarted carts-primary, and was 100 s into the
  10-minute wait after the restart when the receiver stopped (at 1800001360);
- remediation 3 queued behind it, for the same service.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.engine_world import FAST, NS, TWO_ACTIONS, MakeWorld

DUMP = Path(__file__).parent / "data" / "journal-v1.sql"
STOPPED_AT = 1_800_001_360.0


async def test_a_journal_of_the_previous_version_resumes_where_it_stopped(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    connection = sqlite3.connect(tmp_path / "journal.db")
    connection.executescript(DUMP.read_text())
    connection.close()
    world = await make_world(TWO_ACTIONS, remediation_cooldown=60.0, scaling_scale_back_after=300.0)
    world.cluster.deployments[(NS, "carts-primary")]["spec"]["replicas"] = 3
    world.clock.advance(STOPPED_AT - world.clock.now())
    waiting = await world.waiting(2, 1)
    assert waiting["phase_until"] == "2027-01-15T08:31:00.000Z"  # 500 s of the wait left
    assert (await world.get(3))["state"] == "pending"

    world.clock.advance(500)  # still slow: nothing left to try
    second = await world.finished(2)
    assert (second["state"], second["reason"]) == (
        "escalated",
        "no action healed it; escalation delivered",
    )
    assert [(s["action"], s["verdict"]) for s in second["steps"]] == [
        ("scaling", "next"),
        ("restart", "next"),
        ("escalate", "escalated"),
    ]
    assert len(world.escalations) == 1

    await world.until(3, lambda d: d["phase"] == "cooldown", "the cooldown")
    world.clock.advance(60)
    await world.waiting(3, 0)
    assert world.cluster.replicas(NS, "carts-primary") == 4

    await world.resolve("fp-healed")  # remediation 1's scale-back is due 300 s from now
    await world.until(1, lambda d: d["problem_state"] == "resolved", "the resolve")
    await world.until(1, lambda d: world.clock.sleepers >= 2, "the scale-back delay")
    world.clock.advance(300)  # due, but remediation 3 holds the service: after it
    world.slis.update(FAST)
    world.clock.advance(600)
    assert (await world.finished(3))["state"] == "healed"
    first = await world.scaled_back(1)
    assert first["steps"][1]["detail"] == (
        "skipped: carts-primary has 4 replicas, not the 2 this remediation set;"
        " someone else scaled it"
    )
