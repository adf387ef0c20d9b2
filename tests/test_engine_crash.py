"""Kill -9 in the middle of a remediation; after a restart it completes, each action applied
exactly once (counted by the Kubernetes stand-in)."""

from __future__ import annotations

import asyncio
import sys
import time

from tests import processes
from tests.crash_stage import NS, RT, WAIT, Stage, moment


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
    assert stage.cluster.scale_writes() == 1  # applied exactly once


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
    assert stage.cluster.scale_writes() == 0  # in flight: not applied yet
    document = await stage.until(rid, lambda d: True)
    assert document["steps"][0]["result"] == "started"
    await stage.receiver.kill()
    for _ in range(100):  # the orphaned PATCH lands after its sender died
        if stage.cluster.scale_writes():
            break
        await asyncio.sleep(0.02)
    assert stage.cluster.scale_writes() == 1, "the orphaned PATCH never landed"
    assert stage.cluster.replicas(NS, "carts-primary") == 2
    stage.cluster.write_delay = 0.0
    stage.slis[RT] = 300.0
    await stage.receiver.start()
    done = await stage.until(rid, lambda d: d["phase"] == "done")
    assert done["state"] == "healed"
    assert stage.cluster.replicas(NS, "carts-primary") == 2  # not 3
    assert stage.cluster.scale_writes() == 1
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
    assert stage.cluster.scale_writes() == 2  # one per remediation, in order
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
    assert "response_time_p90: 300 → pass" in timeline
