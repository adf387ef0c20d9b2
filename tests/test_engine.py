"""The self-healing loop over the HTTP interface, with the Kubernetes, Prometheus and
escalation stand-ins and a clock that tests move by hand (tests/engine_world.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from receiver.clock import iso
from receiver.errors import ConfigRefused
from receiver.settings import WebhookAction
from tests import prometheus_standin
from tests.conftest import AUTH, edit_journal
from tests.engine_world import (
    ERRORS,
    FAST,
    NS,
    RT,
    SLOW,
    TWO_ACTIONS,
    TWO_RULES,
    WAIT,
    MakeWorld,
    over,
)

pytestmark = pytest.mark.usefixtures("journal_backend")  # SQLite and PostgreSQL

# Keptn >= 0.7's custom action (its own test asset's run-snow-wf) before a scaling.
SNOW_THEN_SCALE = """
apiVersion: spec.keptn.sh/0.1.4
kind: Remediation
spec:
  remediations:
  - problemType: response_time_p90
    actionsOnOpen:
    - {action: run-snow-wf, name: open a ticket, value: {priority: 2}}
    - {action: scaling, name: scaling, value: "1"}
"""


async def test_healed_after_the_first_action(make_world: MakeWorld) -> None:
    world = await make_world()
    recorded = await world.fire()
    rid = recorded["remediation_id"]
    await world.waiting(rid, 0)
    assert world.cluster.replicas(NS, "carts-primary") == 2
    world.slis.update(FAST)  # the new replica helps
    acted_at = world.clock.now()
    world.clock.advance(WAIT)
    done = await world.finished(rid)
    # Both SLIs as sli.yaml renders them for carts over the 10-minute window, at the end of
    # the wait: the evaluation time is the clock's, not the wall clock's.
    assert sorted(world.queries) == [(RT, acted_at + WAIT), (ERRORS, acted_at + WAIT)]
    assert done["state"] == "healed"
    assert done["reason"].startswith("scaling (step 1) healed it: SLO pass, score 100.0")
    (step,) = done["steps"]
    assert (step["action"], step["input"], step["result"], step["verdict"]) == (
        "scaling",
        "1",
        "succeeded",
        "healed",
    )
    assert step["evaluation"]["result"] == "pass"
    assert {o["sli"]: o["status"] for o in step["evaluation"]["objectives"]} == {
        "response_time_p90": "pass",
        "error_rate": "pass",
    }
    assert world.escalations == []


async def test_the_first_action_fails_its_slo_and_the_second_heals(make_world: MakeWorld) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.clock.advance(WAIT)  # still slow: the SLO fails
    await world.waiting(rid, 1)
    template = world.cluster.deployments[(NS, "carts-primary")]["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    done = await world.finished(rid)
    assert done["state"] == "healed"
    assert [
        (s["action"], s["result"], s["verdict"], s["evaluation"]["result"]) for s in done["steps"]
    ] == [("scaling", "succeeded", "next", "fail"), ("restart", "succeeded", "healed", "pass")]


async def test_when_nothing_helps_the_problem_is_escalated(make_world: MakeWorld) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    for step in (0, 1):
        await world.waiting(rid, step)
        world.clock.advance(WAIT)
    done = await world.finished(rid)
    assert done["state"] == "escalated"
    assert done["reason"] == "no action healed it; escalation delivered"
    assert [s["action"] for s in done["steps"]] == ["scaling", "restart", "escalate"]
    (document,) = world.escalations
    assert document["problem"]["title"] == "response_time_p90"
    assert [(s["action"], s["result"]) for s in document["steps"]] == [
        ("scaling", "succeeded"),
        ("restart", "succeeded"),
    ]
    assert document["evaluation"]["result"] == "fail"


async def test_a_failed_action_moves_on_at_once(make_world: MakeWorld) -> None:
    world = await make_world(TWO_ACTIONS)
    world.cluster.deployments[(NS, "carts-primary")]["spec"]["replicas"] = 10  # at the maximum
    rid = (await world.fire())["remediation_id"]
    document = await world.waiting(rid, 1)  # no wait after the failed scaling
    first = document["steps"][0]
    assert (first["result"], first["detail"], first["verdict"]) == (
        "failed",
        "no effect: at maximum 10 replicas",
        "next",
    )
    assert first["evaluation"] is None


async def test_a_resolve_soon_after_the_action_is_judged_on_the_minute_after_it(
    make_world: MakeWorld,
) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    acted_at = world.clock.now()
    world.slis.update(over("60s", FAST))  # the new replica helped, and the alert resolves
    await world.resolve()
    # Not judged on the ten minutes before, nine of them before the action, nor after the
    # whole wait: once a minute after the action can be measured.
    waiting = await world.until(
        rid,
        lambda d: d["phase_until"] == iso(acted_at + 60) and world.clock.sleepers > 0,
        "the shortened wait",
    )
    assert waiting["phase"] == "wait"
    world.clock.advance(60)
    done = await world.finished(rid)
    assert (done["state"], done["reason"]) == (
        "healed",
        "scaling (step 1) healed it: SLO pass, score 100.0",
    )
    assert sorted(world.queries) == [
        (prometheus_standin.response_time_p90("60s"), acted_at + 60),
        (prometheus_standin.error_rate("60s"), acted_at + 60),
    ]
    window = done["steps"][0]["evaluation"]["window"]
    assert window == {"start": iso(acted_at), "end": iso(acted_at + 60)}
    assert [(s["action"], s["verdict"]) for s in done["steps"]] == [("scaling", "healed")]
    assert world.cluster.count("PATCH", "/carts-primary") == 0  # the restart never ran


async def test_a_resolve_whose_slo_still_fails_moves_on_to_the_next_action(
    make_world: MakeWorld,
) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.slis.update(over("60s", SLOW))
    await world.resolve()  # resolved, but the SLO says the service is still slow
    await world.until(rid, lambda d: world.clock.sleepers > 0, "the shortened wait")
    world.clock.advance(60)
    document = await world.waiting(rid, 1)
    assert [(s["action"], s["verdict"]) for s in document["steps"]] == [
        ("scaling", "next"),
        ("restart", None),
    ]
    assert document["steps"][0]["evaluation"]["result"] == "fail"


async def test_when_the_slo_cannot_say_the_sources_resolve_decides(make_world: MakeWorld) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.clock.advance(120)  # resolved two minutes after the action; Prometheus has no value
    await world.resolve()
    done = await world.finished(rid)
    assert done["state"] == "resolved"
    assert done["reason"].startswith(
        "resolved by its source after 1 action; the SLO could not say whether it healed:"
        " SLO fail, score 0.0 over 120s, no value for response_time_p90: "
    )
    assert [(s["action"], s["verdict"]) for s in done["steps"]] == [("scaling", "resolved")]
    assert world.escalations == []  # nobody paged for a problem its source says is gone


async def test_a_resolve_before_any_action_succeeded_stays_resolved(
    make_world: MakeWorld,
) -> None:
    world = await make_world(TWO_ACTIONS, remediation_cooldown=600.0)
    first = (await world.fire(key="fp-0", title="Memory"))["remediation_id"]  # the default rule
    await world.finished(first)  # escalated: its end starts the service's cooldown
    rid = (await world.fire())["remediation_id"]
    await world.until(rid, lambda d: d["phase"] == "cooldown", "the cooldown")
    await world.resolve()
    done = await world.finished(rid)
    assert (done["state"], done["reason"], done["steps"]) == (
        "resolved",
        "resolved by its source before the remediation began",
        [],
    )


async def test_repeated_firing_starts_one_remediation(make_world: MakeWorld) -> None:
    world = await make_world()
    first = await world.fire()
    repeats = [await world.fire() for _ in range(3)]
    assert [r["outcome"] for r in repeats] == ["repeated"] * 3
    assert all(r["remediation_id"] is None for r in repeats)
    await world.waiting(first["remediation_id"], 0)
    listed = await (await world.client.get("/api/v1/remediations")).json()
    assert len(listed["remediations"]) == 1
    assert world.cluster.replicas(NS, "carts-primary") == 2


async def test_two_problems_of_one_service_are_serialized(make_world: MakeWorld) -> None:
    world = await make_world(TWO_RULES, remediation_cooldown=120.0)
    first = (await world.fire(key="fp-1"))["remediation_id"]
    second = (await world.fire(title="error_rate", key="fp-2"))["remediation_id"]
    await world.waiting(first, 0)
    assert (await world.get(second))["state"] == "pending"  # queued behind the first
    assert world.cluster.replicas(NS, "carts-primary") == 2  # only the first has acted
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    assert (await world.finished(first))["state"] == "healed"
    await world.until(second, lambda d: d["phase"] == "cooldown", "the cooldown")
    assert world.cluster.replicas(NS, "carts-primary") == 2
    world.clock.advance(120)
    await world.waiting(second, 0)
    assert world.cluster.replicas(NS, "carts-primary") == 3


async def test_a_problem_resolved_during_the_cooldown_is_not_remediated(
    make_world: MakeWorld,
) -> None:
    world = await make_world(TWO_RULES, remediation_cooldown=120.0)
    first = (await world.fire(key="fp-1"))["remediation_id"]
    second = (await world.fire(title="error_rate", key="fp-2"))["remediation_id"]
    await world.waiting(first, 0)
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    await world.until(second, lambda d: d["phase"] == "cooldown", "the cooldown")
    await world.resolve("fp-2")
    world.clock.advance(120)
    done = await world.finished(second)
    assert (done["state"], done["steps"]) == ("resolved", [])
    assert done["reason"] == "resolved by its source before the remediation began"


async def test_different_services_run_concurrently(make_world: MakeWorld, config_dir: Path) -> None:
    orders = config_dir / "sockshop" / "production" / "orders"
    orders.mkdir()
    (orders / "remediation.yaml").write_text(
        "remediations:\n- name: response_time_p90\n  actions:\n  - {action: scaling, value: +1}\n"
    )
    world = await make_world()
    world.cluster.add_deployment(NS, "orders-primary", replicas=1)
    carts = (await world.fire(key="fp-1"))["remediation_id"]
    other = (await world.fire(key="fp-2", service="orders"))["remediation_id"]
    await world.waiting(carts, 0)
    await world.until(other, lambda d: d["phase"] == "wait", "its wait")
    assert world.cluster.replicas(NS, "orders-primary") == 2


async def test_without_an_slo_a_resolve_after_an_action_is_healed(make_world: MakeWorld) -> None:
    world = await make_world(TWO_ACTIONS, slo=False)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    await world.resolve()
    done = await world.finished(rid)
    assert done["state"] == "healed"
    assert done["steps"][0]["verdict"] == "healed"


async def test_without_an_slo_a_problem_still_open_moves_on(make_world: MakeWorld) -> None:
    world = await make_world(TWO_ACTIONS, slo=False)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.clock.advance(WAIT)
    document = await world.waiting(rid, 1)
    assert document["steps"][0]["verdict"] == "next"


async def test_cancel_stops_a_remediation(make_world: MakeWorld) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    assert (await world.client.post(f"/api/v1/remediations/{rid}/cancel")).status == 401
    response = await world.client.post(f"/api/v1/remediations/{rid}/cancel", headers=AUTH)
    assert response.status == 202
    done = await world.finished(rid)
    assert (done["state"], done["reason"]) == ("cancelled", "cancelled by hand after 1 action")
    again = await world.client.post(f"/api/v1/remediations/{rid}/cancel", headers=AUTH)
    assert again.status == 409
    missing = await world.client.post("/api/v1/remediations/999/cancel", headers=AUTH)
    assert missing.status == 404


async def test_the_default_rule_catches_other_titles(make_world: MakeWorld) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire(title="Memory leak"))["remediation_id"]
    done = await world.finished(rid)
    assert (done["state"], done["rule"]) == ("escalated", "default")
    assert done["reason"] == "the rule escalates here; escalation delivered"
    assert len(world.escalations) == 1


async def test_a_broken_rule_is_never_put_in_force(make_world: MakeWorld) -> None:
    # What `receiver check` refuses no receiver runs (a problem would otherwise be recorded
    # as "nothing to do" while whoever broke the file believes it is handled).
    with pytest.raises(ConfigRefused) as refused:
        await make_world(TWO_ACTIONS.replace('value: "1"', "value: lots"))
    (problem,) = refused.value.problems
    assert problem.path == "spec.remediations[0].actionsOnOpen[0].value"
    assert problem.message == "expected a replica delta such as +1, 1 or -1, got 'lots'"


async def test_a_dry_run_rule_changes_nothing(make_world: MakeWorld) -> None:
    world = await make_world(
        TWO_ACTIONS.replace(
            "  - problemType: response_time_p90\n",
            "  - problemType: response_time_p90\n    dry_run: true\n    wait: 1m\n",
        )
    )
    rid = (await world.fire())["remediation_id"]
    document = await world.waiting(rid, 0)
    assert document["steps"][0]["detail"].startswith("dry run, nothing changed: scale")
    assert world.cluster.calls == []
    assert document["phase_until"] is not None
    world.clock.advance(60)  # the rule's own wait, not the 10-minute default
    await world.waiting(rid, 1)


async def test_the_list_is_filtered_and_carries_the_interface_fields(make_world: MakeWorld) -> None:
    world = await make_world()
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    listed = (
        await (
            await world.client.get(
                "/api/v1/remediations", params={"state": "running", "service": "carts"}
            )
        ).json()
    )["remediations"]
    (item,) = listed
    assert (
        item
        | {
            "id": rid,
            "problem_key": "fp-1",
            "project": "sockshop",
            "stage": "production",
            "service": "carts",
            "state": "running",
        }
        == item
    )
    assert [(s["action"], s["result"]) for s in item["steps"]] == [("scaling", "succeeded")]
    empty = await world.client.get("/api/v1/remediations", params={"state": "healed"})
    assert (await empty.json())["remediations"] == []
    bad = await world.client.get("/api/v1/remediations", params={"state": "done"})
    assert bad.status == 400


async def test_metrics_count_remediations_and_actions(make_world: MakeWorld) -> None:
    world = await make_world()
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    await world.finished(rid)
    text = await (await world.client.get("/metrics")).text()
    assert "receiver_remediations_started_total 1.0" in text
    assert 'receiver_remediations_finished_total{state="healed"} 1.0' in text
    assert 'receiver_action_duration_seconds_count{action="scaling",result="succeeded"} 1.0' in text
    assert 'receiver_slo_evaluations_total{result="pass"} 1.0' in text
    assert "receiver_remediations_in_progress 0.0" in text


async def test_after_healing_and_the_resolve_replicas_go_back(make_world: MakeWorld) -> None:
    world = await make_world(scaling_scale_back_after=300.0)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    assert (await world.finished(rid))["state"] == "healed"
    assert world.cluster.replicas(NS, "carts-primary") == 2
    await world.resolve()
    await world.until(
        rid,
        lambda d: world.clock.sleepers > 0 and d["problem_state"] == "resolved",
        "the scale-back delay",
    )
    world.clock.advance(299)
    await asyncio.sleep(0.05)
    assert world.cluster.replicas(NS, "carts-primary") == 2  # not before the delay
    world.clock.advance(1)
    done = await world.scaled_back(rid)
    assert (done["steps"][1]["action"], done["steps"][1]["result"]) == ("scale-back", "succeeded")
    assert done["steps"][1]["detail"] == (
        "scaled sockshop-production/carts-primary back from 2 to 1 replicas"
    )
    assert world.cluster.replicas(NS, "carts-primary") == 1
    assert done["state"] == "healed"


async def test_a_scale_back_leaves_a_deployment_someone_else_scaled(make_world: MakeWorld) -> None:
    world = await make_world(scaling_scale_back_after=60.0)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.slis.update(FAST)
    world.clock.advance(WAIT)
    await world.finished(rid)
    world.cluster.deployments[(NS, "carts-primary")]["spec"]["replicas"] = 5  # a person did
    await world.resolve()
    await world.until(rid, lambda d: world.clock.sleepers > 0, "the scale-back delay")
    world.clock.advance(60)
    done = await world.scaled_back(rid)
    assert done["steps"][1]["detail"].startswith("skipped: carts-primary has 5 replicas")
    assert world.cluster.replicas(NS, "carts-primary") == 5


async def test_a_remediation_the_engine_cannot_run_is_escalated_not_stranded(
    make_world: MakeWorld, tmp_path: Path, journal_backend: str
) -> None:
    world = await make_world(TWO_ACTIONS)
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    await world.client.close()  # the receiver stops mid-wait ...
    # ... and a newer version's plan is what it finds when it comes back
    if journal_backend == "sqlite":
        edit_journal(
            tmp_path,
            "UPDATE remediations SET plan = json_set(plan, '$.actions[1].action', 'scaling',"
            " '$.actions[1].value', 'lots')",
        )
    else:
        edit_journal(
            tmp_path,
            "UPDATE remediations SET plan = jsonb_set(jsonb_set(plan::jsonb,"
            " '{actions,1,action}', '\"scaling\"'), '{actions,1,value}', '\"lots\"')::text",
        )
    restarted = await make_world(TWO_ACTIONS)
    restarted.clock.advance(WAIT)
    done = await restarted.finished(rid)
    assert done["state"] == "escalated"
    assert done["reason"] == (
        "the receiver failed (ValueError: expected a replica delta such as +1, 1 or -1, got"
        " 'lots'); escalation delivered"
    )
    assert [s["action"] for s in done["steps"]] == ["scaling", "escalate"]
    assert len(restarted.escalations) == 1


async def test_an_action_the_receiver_does_not_run_fails_its_step_and_the_chain_moves_on(
    make_world: MakeWorld,
) -> None:
    world = await make_world(SNOW_THEN_SCALE)
    rid = (await world.fire())["remediation_id"]
    document = await world.waiting(rid, 1)  # Keptn >= 0.7's custom action did not stop it
    first = document["steps"][0]
    assert (first["action"], first["input"], first["result"], first["verdict"]) == (
        "run-snow-wf",
        {"priority": 2},
        "failed",
        "next",
    )
    assert first["detail"].startswith("no executor for action 'run-snow-wf'")
    assert world.cluster.replicas(NS, "carts-primary") == 2


async def test_keptns_problem_open_sli_is_answered_from_the_journal(
    make_world: MakeWorld, config_dir: Path
) -> None:
    """Keptn >= 0.8's Dynatrace SLOs judge a remediation by `problem_open` (no sli.yaml
    defines it): 1 while a problem the remediation is for is still open."""
    (config_dir / "sockshop" / "production" / "carts" / "slo.yaml").write_text(
        "objectives:\n"
        "- sli: response_time_p90\n  pass: [{criteria: ['<600']}]\n"
        "- sli: problem_open\n  key_sli: true\n  pass: [{criteria: ['<=0']}]\n"
        "total_score: {pass: '90%', warning: '75%'}\n"
    )
    world = await make_world(TWO_ACTIONS)
    world.slis.update(FAST)  # fast already: only the open problem fails the SLO
    rid = (await world.fire())["remediation_id"]
    await world.waiting(rid, 0)
    world.clock.advance(WAIT)
    await world.waiting(rid, 1)
    restarted_at = world.clock.now()
    world.slis.update(over("60s", FAST))
    await world.resolve()  # judged a minute after the restart: the problem is closed now
    await world.until(
        rid, lambda d: d["phase_until"] == iso(restarted_at + 60), "the shortened wait"
    )
    world.clock.advance(60)
    done = await world.finished(rid)
    assert done["state"] == "healed"
    assert [
        {o["sli"]: o["value"] for o in step["evaluation"]["objectives"]} for step in done["steps"]
    ] == [
        {"response_time_p90": 300.0, "problem_open": 1.0},
        {"response_time_p90": 300.0, "problem_open": 0.0},
    ]


async def test_a_keptn_custom_action_mapped_in_receiver_yaml_runs_as_an_http_post(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    """Keptn >= 0.7 handed `run-snow-wf` to whichever service subscribed to it; mapped under
    actions.webhooks it is a POST of the problem and the action's value, retried on 503 with
    one idempotency key for every attempt."""
    received: list[tuple[dict[str, str], dict[str, object]]] = []

    async def snow(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.json()))
        if len(received) == 1:
            return web.Response(status=503, text="busy")
        return web.json_response({"ticket": "INC0012"}, status=201)

    app = web.Application()
    app.router.add_post("/workflows/snow", snow)
    server = TestServer(app)
    await server.start_server()
    (tmp_path / "snow-token").write_text("snow-secret-0123456789\n")
    try:
        world = await make_world(
            SNOW_THEN_SCALE,
            action_webhooks={
                "run-snow-wf": WebhookAction(
                    url=str(server.make_url("/workflows/snow")),
                    token_file=str(tmp_path / "snow-token"),
                )
            },
        )
        rid = (await world.fire())["remediation_id"]
        document = await world.waiting(rid, 0)
    finally:
        await server.close()
    (step,) = document["steps"]
    assert (step["action"], step["result"]) == ("run-snow-wf", "succeeded")
    assert step["detail"].endswith("answered 201")
    assert len(received) == 2  # the 503, then the retry
    (headers, body), (retry_headers, retry_body) = received
    assert headers["Authorization"] == "Bearer snow-secret-0123456789"
    assert headers["Idempotency-Key"] == retry_headers["Idempotency-Key"] == f"selfheal-{rid}-0"
    assert body == retry_body
    assert body["action"] == "run-snow-wf"
    assert body["value"] == {"priority": 2}
    assert (body["remediation"], body["step"], body["rule"]) == (rid, 0, "response_time_p90")
    problem = body["problem"]
    assert isinstance(problem, dict)
    assert (problem["key"], problem["title"], problem["service"]) == (
        "fp-1",
        "response_time_p90",
        "carts",
    )
