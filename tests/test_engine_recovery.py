"""The engine's recovery paths: what a restart finds half done, stops at every safe point, and
the failures of what a remediation depends on (SLO files, SLIs, the scale-back's Kubernetes).

A "crash" here is the receiver's client closed in the middle of a remediation (its tasks are
cancelled where they stand, as a SIGKILL leaves the journal) and, where the crash must fall
between two journal writes, the journal set to what such a crash leaves; then the receiver
starts again on the same journal, stand-ins and clock. tests/test_engine_crash.py kills a real
process for the paths that need one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AUTH, edit_journal, journal_write_lock
from tests.engine_world import FAST, NS, RT, TWO_ACTIONS, TWO_RULES, WAIT, MakeWorld, World, over

pytestmark = pytest.mark.usefixtures("journal_backend")  # SQLite and PostgreSQL


async def stopped_in_the_first_wait(make_world: MakeWorld) -> tuple[World, int]:
    """A receiver with TWO_ACTIONS stopped while its remediation waits after the first."""
    world = await make_world(TWO_ACTIONS)
    rid: int = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    await world.client.close()
    return world, rid


async def crash_and_restart(make_world: MakeWorld, world: World, **settings: Any) -> World:
    await world.client.close()
    return await make_world(restart=world, **settings)


async def test_a_wait_resumed_after_a_restart_ends_when_it_would_have(
    make_world: MakeWorld,
) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    before = await world.waiting(rid, 0)
    world.clock.advance(WAIT - 100)
    restarted = await crash_and_restart(make_world, world)
    after = await restarted.waiting(rid, 0)
    assert after["phase_until"] == before["phase_until"]  # not a new, whole wait
    restarted.clock.advance(99)
    await asyncio.sleep(0.05)
    assert (await restarted.get(rid))["phase"] == "wait"
    restarted.clock.advance(1)
    await restarted.waiting(rid, 1)  # the rest of the wait ran out: judged, the next action
    assert restarted.cluster.scale_writes() == 1


async def test_a_cancel_requested_while_the_receiver_was_down_is_honoured(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world, rid = await stopped_in_the_first_wait(make_world)
    edit_journal(tmp_path, f"UPDATE remediations SET cancel_requested = 1 WHERE id = {rid}")
    restarted = await make_world(restart=world)
    done = await restarted.finished(rid)
    assert (done["state"], done["reason"]) == ("cancelled", "cancelled by hand after 1 action")
    assert done["steps"][0]["verdict"] is None  # not judged: nobody asked for its verdict
    assert restarted.cluster.count("PATCH", "/carts-primary") == 0  # the restart never ran


async def test_a_problem_resolved_while_down_is_judged_at_the_restart(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world, rid = await stopped_in_the_first_wait(make_world)
    # The resolve was committed, then the receiver died before the engine heard of it, and
    # came back two minutes after the action.
    edit_journal(tmp_path, "UPDATE problems SET state = 'resolved', resolved_at = 1")
    world.clock.advance(120)
    world.slis.update(over("120s", FAST))
    restarted = await make_world(restart=world)
    done = await restarted.finished(rid)  # at once, not after the rest of the wait
    assert done["state"] == "healed"
    assert done["steps"][0]["verdict"] == "healed"
    assert restarted.cluster.count("PATCH", "/carts-primary") == 0


async def test_a_remediation_cancelled_while_queued_never_begins(make_world: MakeWorld) -> None:
    world = await make_world(TWO_RULES, remediation_cooldown=120.0)
    first = (await world.fire(key="fp-1"))["remediation_id"]
    second = (await world.fire(title="error_rate", key="fp-2"))["remediation_id"]
    await world.waiting(first, 0)
    response = await world.client.post(f"/api/v1/remediations/{second}/cancel", headers=AUTH)
    assert response.status == 202
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    assert (await world.finished(first))["state"] == "healed"
    done = await world.finished(second)
    assert (done["state"], done["reason"], done["steps"]) == (
        "cancelled",
        "cancelled before it began",
        [],
    )
    assert world.cluster.scale_writes() == 1


async def test_a_cancel_found_at_the_evaluation_after_a_restart_skips_the_verdict(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world, rid = await stopped_in_the_first_wait(make_world)
    edit_journal(
        tmp_path,
        f"UPDATE remediations SET phase = 'evaluate', cancel_requested = 1 WHERE id = {rid}",
    )
    restarted = await make_world(restart=world)
    done = await restarted.finished(rid)
    assert (done["state"], done["reason"]) == ("cancelled", "cancelled by hand after 1 action")
    assert done["steps"][0]["evaluation"] is None


async def test_a_crash_in_the_evaluate_phase_evaluates_after_the_restart(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world, rid = await stopped_in_the_first_wait(make_world)
    edit_journal(tmp_path, f"UPDATE remediations SET phase = 'evaluate' WHERE id = {rid}")
    world.slis.update(FAST)
    restarted = await make_world(restart=world)
    done = await restarted.finished(rid)  # no second wait: the wait was over
    assert done["state"] == "healed"
    assert done["steps"][0]["evaluation"]["result"] == "pass"
    assert restarted.cluster.scale_writes() == 1


async def test_a_step_that_succeeded_before_the_crash_is_not_run_again(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world, rid = await stopped_in_the_first_wait(make_world)
    # Died after the step's result was written, before the wait was.
    edit_journal(
        tmp_path,
        f"UPDATE remediations SET phase = 'action', phase_until = NULL WHERE id = {rid}",
    )
    restarted = await make_world(restart=world)
    await restarted.waiting(rid, 0)
    assert restarted.cluster.scale_writes() == 1
    restarted.slis.update(FAST)
    restarted.clock.advance(WAIT)
    done = await restarted.finished(rid)
    assert done["state"] == "healed"
    assert [(s["action"], s["verdict"]) for s in done["steps"]] == [("scaling", "healed")]


async def test_a_step_that_failed_before_the_crash_moves_on_to_the_next(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world, rid = await stopped_in_the_first_wait(make_world)
    edit_journal(
        tmp_path,
        "UPDATE steps SET result = 'failed', detail = 'no effect', verdict = NULL",
        f"UPDATE remediations SET phase = 'action', phase_until = NULL WHERE id = {rid}",
    )
    restarted = await make_world(restart=world)
    document = await restarted.waiting(rid, 1)
    assert [(s["action"], s["result"], s["verdict"]) for s in document["steps"]] == [
        ("scaling", "failed", "next"),
        ("restart", "succeeded", None),
    ]
    assert restarted.cluster.scale_writes() == 1


async def test_an_slo_file_broken_on_disk_meanwhile_changes_nothing(
    make_world: MakeWorld, config_dir: Path
) -> None:
    """The SLO in force judges, not whatever the file says at that moment: a broken edit
    that no reload put in force must not fail the evaluation (it did: criterion '<<600',
    every evaluation failed, and the remediation escalated for nothing)."""
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    slo = config_dir / "sockshop" / "production" / "carts" / "slo.yaml"
    slo.write_text("objectives: [{sli: response_time_p90, pass: [{criteria: ['<<600']}]}]\n")
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    done = await world.finished(rid)
    assert (done["state"], done["steps"][0]["evaluation"]["result"]) == ("healed", "pass")


async def test_an_sli_that_cannot_be_measured_fails_its_objective(make_world: MakeWorld) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.slis[RT] = float("nan")  # no data in the window
    world.clock.advance(WAIT)
    document = await world.waiting(rid, 1)
    evaluation = (await world.get(rid))["steps"][0]["evaluation"]
    assert evaluation["result"] == "fail"
    assert {o["sli"]: (o["status"], o["value"]) for o in evaluation["objectives"]} == {
        "response_time_p90": ("fail", None),
        "error_rate": ("pass", 0.0),
    }
    assert "NaN" in evaluation["reasons"]["response_time_p90"]
    assert document["steps"][0]["verdict"] == "next"


async def healed_and_resolved(world: World) -> int:
    rid: int = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    assert (await world.finished(rid))["state"] == "healed"
    await world.resolve()
    await world.until(
        rid,
        lambda d: world.clock.sleepers > 0 and d["problem_state"] == "resolved",
        "the scale-back delay",
    )
    return rid


async def test_a_scale_back_due_at_a_restart_runs_after_it(make_world: MakeWorld) -> None:
    world = await make_world(scaling_scale_back_after=300.0)
    rid = await healed_and_resolved(world)
    world.clock.advance(200)
    restarted = await crash_and_restart(make_world, world, scaling_scale_back_after=300.0)
    await restarted.until(rid, lambda d: restarted.clock.sleepers > 0, "the rest of the delay")
    restarted.clock.advance(99)
    await asyncio.sleep(0.05)
    assert restarted.cluster.replicas(NS, "carts-primary") == 2
    restarted.clock.advance(1)
    done = await restarted.scaled_back(rid)
    assert (done["steps"][1]["action"], done["steps"][1]["result"]) == ("scale-back", "succeeded")
    assert restarted.cluster.replicas(NS, "carts-primary") == 1


async def test_a_scale_back_waiting_for_the_resolve_at_a_restart_waits_for_it(
    make_world: MakeWorld,
) -> None:
    world = await make_world(scaling_scale_back_after=300.0)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    await world.finished(rid)
    restarted = await crash_and_restart(make_world, world, scaling_scale_back_after=300.0)
    await asyncio.sleep(0.05)
    restarted.clock.advance(3600)
    await asyncio.sleep(0.05)
    assert restarted.cluster.replicas(NS, "carts-primary") == 2  # still open: kept
    await restarted.resolve()
    await restarted.until(rid, lambda d: restarted.clock.sleepers > 0, "the scale-back delay")
    restarted.clock.advance(300)
    assert (await restarted.scaled_back(rid))["steps"][1]["result"] == "succeeded"
    assert restarted.cluster.replicas(NS, "carts-primary") == 1


async def test_a_scale_back_that_fails_is_recorded_and_tried_no_more(
    make_world: MakeWorld,
) -> None:
    world = await make_world(scaling_scale_back_after=60.0, action_attempts=2)
    rid = await healed_and_resolved(world)
    world.cluster.fail("PATCH", "/scale", 503, times=2)
    world.clock.advance(60)
    done = await world.scaled_back(rid)
    step = done["steps"][1]
    assert (step["action"], step["result"]) == ("scale-back", "failed")
    assert "gave up after 2 attempts" in step["detail"]
    assert done["state"] == "healed"  # the remediation's verdict stands
    assert world.cluster.replicas(NS, "carts-primary") == 2
    restarted = await crash_and_restart(make_world, world, scaling_scale_back_after=60.0)
    restarted.clock.advance(3600)
    await asyncio.sleep(0.05)
    assert len((await restarted.get(rid))["steps"]) == 2  # done is done, even failed


async def test_a_scale_back_whose_deployment_is_gone_is_recorded_as_failed(
    make_world: MakeWorld,
) -> None:
    world = await make_world(scaling_scale_back_after=60.0)
    rid = await healed_and_resolved(world)
    del world.cluster.deployments[(NS, "carts-primary")]
    world.clock.advance(60)
    done = await world.scaled_back(rid)
    assert done["steps"][1]["result"] == "failed"
    assert (
        done["steps"][1]["detail"] == "no Deployment carts-primary in namespace sockshop-production"
    )


async def test_while_the_journal_refuses_writes_the_engine_waits_then_goes_on(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world = await make_world(TWO_ACTIONS, store_busy_timeout=0.1)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    with journal_write_lock(tmp_path):  # another process holds the journal's write lock
        world.slis.update(FAST)
        world.clock.advance(WAIT)  # the wait is over, but its end cannot be saved
        await world.until(
            rid, lambda d: world.clock.sleepers == 1 and d["phase"] == "wait", "the retry"
        )
        assert world.queries == []  # nothing judged on progress that was not saved
    world.clock.advance(1)  # the journal takes writes again: from the last saved progress on
    done = await world.finished(rid)
    assert done["state"] == "healed"
    assert world.cluster.scale_writes() == 1
