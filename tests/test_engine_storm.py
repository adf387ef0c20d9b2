"""An alert storm on one service: problems of a rule already queued or running for the
service join that remediation; other rules queue up to a cap; what is left over is recorded
with the reason."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from receiver import status
from tests.conftest import AUTH, payload
from tests.engine_world import FAST, NS, TWO_ACTIONS, TWO_RULES, WAIT, MakeWorld, World, over

pytestmark = pytest.mark.usefixtures("journal_backend")  # SQLite and PostgreSQL

THREE_RULES = (
    TWO_RULES
    + """- name: Memory
  actions: [{action: restart}]
"""
)


def alert(key: str, title: str = "response_time_p90", status: str = "firing") -> dict[str, Any]:
    template: dict[str, Any] = copy.deepcopy(payload("alertmanager-firing.json")["alerts"][0])
    template.update(status=status, fingerprint=key)
    template["annotations"]["summary"] = title
    template["labels"]["pod_name"] = f"carts-{key}"  # per-pod alerts: each its own problem
    return template


async def post(world: World, *alerts: dict[str, Any]) -> list[dict[str, Any]]:
    body = payload("alertmanager-firing.json") | {"alerts": list(alerts)}
    response = await world.client.post(
        "/webhooks/alertmanager", data=json.dumps(body), headers=AUTH
    )
    assert response.status == 200, await response.text()
    recorded: list[dict[str, Any]] = (await response.json())["recorded"]
    return recorded


async def test_a_storm_of_2000_alerts_of_one_rule_is_one_remediation(
    make_world: MakeWorld,
) -> None:
    world = await make_world()
    recorded = await post(world, *(alert(f"pod-{i}") for i in range(2000)))
    first, *rest = recorded
    rid = first["remediation_id"]
    assert first["outcome"] == "opened"
    assert {(r["outcome"], r["remediation_id"]) for r in rest} == {("opened", rid)}
    assert rest[0]["reason"] == f"joined remediation {rid} of the same service and rule"
    await world.waiting(rid, 0)
    listed = (await (await world.client.get("/api/v1/remediations")).json())["remediations"]
    assert [(r["id"], r["joined"]) for r in listed] == [(rid, {"problems": 1999, "open": 1999})]
    timeline = await world.get(rid)
    assert len(timeline["joined_problems"]) == 50  # listed in part, counted in full
    assert timeline["joined_problems"][0]["key"] == "pod-1"
    assert world.cluster.scale_writes() == 1
    # A late alert of the same storm joins too, and a repeat changes nothing.
    (late,) = await post(world, alert("pod-late"))
    (repeat,) = await post(world, alert("pod-7"))
    assert (late["remediation_id"], repeat["outcome"]) == (rid, "repeated")


async def test_it_is_judged_on_the_resolve_only_once_every_problem_it_was_for_is_resolved(
    make_world: MakeWorld,
) -> None:
    world = await make_world()
    (first,) = await post(world, alert("pod-1"))
    rid = first["remediation_id"]
    await post(world, alert("pod-2"), alert("pod-3"))
    await world.waiting(rid, 0)
    world.slis.update(FAST)
    await post(world, alert("pod-1", status="resolved"), alert("pod-2", status="resolved"))
    document = await world.waiting(rid, 0)  # pod-3 is still open: it keeps waiting
    assert document["joined"] == {"problems": 2, "open": 1}
    world.clock.advance(60)  # a minute after the action, remediation.min_evaluation_window
    world.slis.update(over("60s", FAST))
    await post(world, alert("pod-3", status="resolved"))
    done = await world.finished(rid)  # judged at once: not after the rest of the wait
    assert (done["state"], done["steps"][0]["verdict"]) == ("healed", "healed")


async def test_its_verdict_ends_it_for_every_problem_it_was_for(make_world: MakeWorld) -> None:
    world = await make_world()
    recorded = await post(world, alert("pod-1"), alert("pod-2"))
    rid = recorded[0]["remediation_id"]
    await world.waiting(rid, 0)
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    assert (await world.finished(rid))["state"] == "healed"
    (after,) = await post(world, alert("pod-2"))  # still firing: a repeat, nothing new starts
    assert (after["outcome"], after["remediation_id"]) == ("repeated", None)


async def test_other_rules_queue_up_to_the_cap_and_the_rest_are_recorded_with_why(
    make_world: MakeWorld,
) -> None:
    world = await make_world(THREE_RULES, remediation_max_queued_per_service=2)
    recorded = await post(
        world, alert("a", "response_time_p90"), alert("b", "error_rate"), alert("c", "Memory")
    )
    assert [r["remediation_id"] is not None for r in recorded] == [True, True, False]
    assert recorded[2]["reason"] == (
        "2 remediations of sockshop/production/carts are queued or running"
        " (remediation.max_queued_per_service = 2): recorded without one"
    )
    problem = await (await world.client.get("/api/v1/problems/c")).json()
    assert problem["ignored_reason"] == recorded[2]["reason"]
    # Once one has ended, the service has room again.
    await world.waiting(recorded[0]["remediation_id"], 0)
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    await world.finished(recorded[0]["remediation_id"])
    (room,) = await post(world, alert("d", "Memory"))
    assert room["remediation_id"] is not None


async def test_a_restart_keeps_joining_problems_to_the_running_remediation(
    make_world: MakeWorld,
) -> None:
    world = await make_world()
    (first,) = await post(world, alert("pod-1"))
    rid = first["remediation_id"]
    await world.waiting(rid, 0)
    await world.client.close()
    restarted = await make_world(restart=world)
    (late,) = await post(restarted, alert("pod-2"))
    assert late["remediation_id"] == rid
    await post(restarted, alert("pod-1", status="resolved"))
    assert (await restarted.waiting(rid, 0))["joined"] == {"problems": 1, "open": 1}


async def test_a_problem_that_joins_as_the_last_one_resolves_gets_its_own_remediation(
    make_world: MakeWorld,
) -> None:
    world = await make_world(TWO_RULES)
    (running,) = await post(world, alert("rt-1"))
    (queued,) = await post(world, alert("err-1", "error_rate"))  # behind the first
    await world.waiting(running["remediation_id"], 0)
    # One delivery: the queued one's problem resolves, and a new one joins it before its
    # end is saved (it ends when its turn comes).
    _, late = await post(
        world, alert("err-1", "error_rate", status="resolved"), alert("err-2", "error_rate")
    )
    rid = queued["remediation_id"]
    assert late["remediation_id"] == rid
    world.slis.update(FAST)
    world.clock.advance(WAIT)  # the first heals; the queued one's turn comes
    done = await world.finished(rid)
    assert (done["state"], done["reason"]) == (
        "resolved",
        "resolved by its source before the remediation began",
    )
    listed = (await (await world.client.get("/api/v1/remediations")).json())["remediations"]
    (heir,) = [r for r in listed if r["id"] not in (rid, running["remediation_id"])]
    assert (heir["problem_key"], heir["rule"]) == ("err-2", "error_rate")
    await world.waiting(heir["id"], 0)
    assert world.cluster.replicas(NS, "carts-primary") == 3  # it acted for err-2


async def test_the_cli_shows_what_joined(make_world: MakeWorld) -> None:
    world = await make_world()
    recorded = await post(world, *(alert(f"pod-{i}") for i in range(61)))
    rid = recorded[0]["remediation_id"]
    await world.waiting(rid, 0)
    listed = (await (await world.client.get("/api/v1/remediations")).json())["remediations"]
    assert "response_time_p90 (+60)" in status.table(listed)
    lines = status.timeline(await world.get(rid)).splitlines()
    assert lines[3].startswith("joined    60 more problems of the rule (60 open): pod-1, pod-2")
    assert lines[3].endswith("pod-50 …")


async def test_without_an_slo_a_joined_problem_still_open_means_not_healed(
    make_world: MakeWorld,
) -> None:
    world = await make_world(TWO_ACTIONS, slo=False)  # scaling, then restart
    (first,) = await post(world, alert("pod-1"))
    rid = first["remediation_id"]
    await post(world, alert("pod-2"))  # joins
    await world.waiting(rid, 0)
    await post(world, alert("pod-1", status="resolved"))  # its own, not the joined one
    world.clock.advance(WAIT)
    document = await world.waiting(rid, 1)  # judged not healed: the next action
    assert document["steps"][0]["verdict"] == "next"


async def test_replicas_go_back_only_once_every_problem_it_healed_is_resolved(
    make_world: MakeWorld,
) -> None:
    world = await make_world(scaling_scale_back_after=300.0)
    (first,) = await post(world, alert("pod-1"))
    rid = first["remediation_id"]
    await post(world, alert("pod-2"))  # joins
    await world.waiting(rid, 0)
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    assert (await world.finished(rid))["state"] == "healed"
    await post(world, alert("pod-1", status="resolved"))  # pod-2 still fires
    await asyncio.sleep(0.05)
    world.clock.advance(300)
    await asyncio.sleep(0.05)
    assert len((await world.get(rid))["steps"]) == 1
    assert world.cluster.replicas(NS, "carts-primary") == 2
    sleepers = world.clock.sleepers
    await post(world, alert("pod-2", status="resolved"))
    await world.until(rid, lambda d: world.clock.sleepers > sleepers, "the scale-back delay")
    world.clock.advance(300)
    done = await world.scaled_back(rid)
    assert (done["steps"][1]["action"], done["steps"][1]["result"]) == ("scale-back", "succeeded")
    assert world.cluster.replicas(NS, "carts-primary") == 1
