"""Manual approval: a rule with `approval: manual` waits for a person before its first action,
asks the escalation targets, runs once approved, ends `rejected` when rejected, escalates when
nobody answers in time, and keeps its place across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import AUTH, edit_journal
from tests.engine_world import NS, MakeWorld, World

pytestmark = pytest.mark.usefixtures("journal_backend")  # SQLite and PostgreSQL

MANUAL = """
apiVersion: spec.keptn.sh/0.1.4
kind: Remediation
spec:
  remediations:
  - problemType: response_time_p90
    approval: manual
    actionsOnOpen:
    - {action: scaling, name: scaling, value: "1"}
"""
FIFTEEN_MINUTES = 15 * 60.0


async def awaiting(world: World, rid: int) -> dict[str, object]:
    return await world.until(
        rid,
        lambda d: d["state"] == "awaiting_approval" and world.clock.sleepers > 1,
        "awaiting approval",
    )


async def decide(world: World, rid: int, decision: str, *, auth: bool = True) -> int:
    response = await world.client.post(
        f"/api/v1/remediations/{rid}/{decision}", headers=AUTH if auth else {}
    )
    return response.status


async def test_it_waits_for_approval_asks_people_and_runs_once_approved(
    make_world: MakeWorld,
) -> None:
    world = await make_world(MANUAL, public_url="https://selfheal.example.com")
    rid = (await world.fire())["remediation_id"]
    document = await awaiting(world, rid)
    assert document["phase"] == "awaiting_approval"
    assert document["steps"] == []
    assert document["approval"] == {
        "required": True,
        "decision": None,
        "until": document["phase_until"],
    }
    assert world.cluster.replicas(NS, "carts-primary") == 1  # nothing ran yet
    (request,) = world.escalations  # people were asked, with the way to answer
    assert request["reason"] == "awaiting approval"
    assert request["approval"]["approve"] == (
        f"POST https://selfheal.example.com/api/v1/remediations/{rid}/approve"
    )
    assert request["approval"]["cli"] == f"receiver approve {rid}"
    assert request["url"] == f"https://selfheal.example.com/api/v1/remediations/{rid}"

    assert await decide(world, rid, "approve", auth=False) == 401  # a person with credentials
    assert await decide(world, rid, "approve") == 202
    done = await world.waiting(rid, 0)
    assert done["state"] == "running"
    assert done["approval"]["decision"] == "approved"
    assert world.cluster.replicas(NS, "carts-primary") == 2
    assert await decide(world, rid, "reject") == 409  # not awaiting approval any more
    listed = await (await world.client.get("/api/v1/remediations?state=running")).json()
    assert [r["id"] for r in listed["remediations"]] == [rid]


async def test_a_rejected_remediation_ends_rejected_before_any_action(
    make_world: MakeWorld,
) -> None:
    world = await make_world(MANUAL)
    rid = (await world.fire())["remediation_id"]
    await awaiting(world, rid)
    assert await decide(world, rid, "reject") == 202
    done = await world.finished(rid)
    assert (done["state"], done["reason"], done["steps"]) == (
        "rejected",
        "rejected by a person",
        [],
    )
    assert world.cluster.scale_writes() == 0
    assert await decide(world, rid, "approve") == 409


async def test_nobody_answering_in_time_escalates(make_world: MakeWorld) -> None:
    world = await make_world(MANUAL)
    rid = (await world.fire())["remediation_id"]
    await awaiting(world, rid)
    world.clock.advance(FIFTEEN_MINUTES)
    done = await world.finished(rid)
    assert done["state"] == "escalated"
    assert done["reason"] == (
        "nobody approved it in time (remediation.approval_timeout); escalation delivered"
    )
    assert [(s["action"], s["verdict"]) for s in done["steps"]] == [("escalate", "escalated")]
    assert world.cluster.scale_writes() == 0
    assert len(world.escalations) == 2  # the request for approval, then the escalation


async def test_an_approval_given_while_the_receiver_was_down_is_honoured(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world = await make_world(MANUAL)
    rid = (await world.fire())["remediation_id"]
    before = await awaiting(world, rid)
    await world.client.close()
    restarted = await make_world(restart=world)
    after = await awaiting(restarted, rid)
    assert after["phase_until"] == before["phase_until"]  # the same deadline, not a new one
    assert len(restarted.escalations) == 1  # not asked again
    await restarted.client.close()
    # as an approve the engine never saw
    edit_journal(tmp_path, f"UPDATE remediations SET approval = 'approved' WHERE id = {rid}")
    again = await make_world(restart=restarted)
    await again.waiting(rid, 0)
    assert again.cluster.replicas(NS, "carts-primary") == 2
