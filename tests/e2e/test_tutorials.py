"""Keptn's three self-healing tutorials, and "nothing helps", end to end on loopback.

Real Prometheus, Alertmanager and Unleash; the carts demo app feels its replicas and its
feature flag; the Kubernetes API and Dynatrace are stand-ins speaking their HTTP APIs. Waits
and windows are seconds instead of minutes (see stack.py), nothing else is shortened.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests import dynatrace_standin, processes
from tests.conftest import EXAMPLE_CONFIG, TOKEN
from tests.e2e import stack
from tests.unleash_server import Unleash


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, unleash: Unleash) -> Iterator[stack.World]:
    with stack.running(tmp_path_factory.mktemp("e2e"), unleash) as running:
        yield running


def finished(
    world: stack.World,
    *,
    within: float = 60,
    where: Callable[[dict[str, Any]], bool] = lambda r: True,
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        done = [
            r for r in world.remediations() if r["state"] not in ("pending", "running") and where(r)
        ]
        if done:
            return world.remediation(done[0]["id"])
        time.sleep(0.25)
    raise AssertionError(f"no remediation finished within {within} s: {world.remediations()}")


SCALE_THEN_RESTART = """
remediations:
- name: response_time_p90
  actions:
  - {action: scaling, value: +1}
  - {action: restart}
"""


def in_the_wait(world: stack.World, within: float = 60) -> None:
    """Until a remediation waits after an action."""
    deadline = time.monotonic() + within
    while not any(r["phase"] == "wait" for r in world.remediations()):
        assert time.monotonic() < deadline, world.remediations()
        time.sleep(0.2)


def config_copy(tmp_path: Path, *, remediation: str | None = None) -> Path:
    """The example configuration, in tmp_path; `remediation`: carts' remediation.yaml."""
    config = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, config)
    if remediation is not None:
        (config / "sockshop" / "production" / "carts" / "remediation.yaml").write_text(remediation)
    return config


def test_1_prometheus_upscale_heals_the_slow_carts(world: stack.World, tmp_path: Path) -> None:
    world.reset()
    env = world.receiver_env(tmp_path / "journal.db")
    with processes.receiver(
        config_copy(tmp_path), port=world.receiver_port, log=tmp_path / "receiver.log", **env
    ):
        world.carts(load=3)  # 300 ms · 3 ÷ 1 replica = 900 ms: over the 600 ms objective
        done = finished(world)
    assert (done["state"], done["title"], done["source"]) == (
        "healed",
        "response_time_p90",
        "alertmanager",
    )
    (step,) = done["steps"]
    assert (step["action"], step["result"]) == ("scaling", "succeeded")
    assert step["detail"] == "scaled sockshop-production/carts-primary from 1 to 2 replicas"
    assert step["evaluation"]["result"] == "pass"
    rt = next(o for o in step["evaluation"]["objectives"] if o["sli"] == "response_time_p90")
    assert 400 < rt["value"] <= 500  # 900 ms halved by the second replica
    assert world.replicas() == 2
    assert world.carts_state()["replicas"] == 2  # the app felt it
    assert len(world.kube_writes()) == 1


def test_2_dynatrace_upscale_heals_with_dynatrace_slis(world: stack.World, tmp_path: Path) -> None:
    world.reset()
    config = config_copy(tmp_path)
    carts = config / "sockshop" / "production" / "carts"
    rt_selector = 'builtin:service.response.time:merge("dt.entity.service"):percentile(90)'
    errors_selector = 'builtin:service.errors.total.rate:merge("dt.entity.service"):avg'
    (carts / "sli.yaml").write_text(
        yaml.safe_dump(
            {
                "spec_version": "1.0",
                "provider": "dynatrace",
                "indicators": {
                    "response_time_p90": f"metricSelector={rt_selector}"
                    "&entitySelector=type(SERVICE),tag(keptn_project:$PROJECT),"
                    "tag(keptn_stage:$STAGE),tag(keptn_service:$SERVICE),"
                    "tag(keptn_deployment:$DEPLOYMENT)",
                    "error_rate": f"metricSelector={errors_selector}&entitySelector=type(SERVICE),"
                    "tag(keptn_service:$SERVICE)",
                },
            }
        )
    )
    (carts / "remediation.yaml").write_text("""
apiVersion: spec.keptn.sh/0.1.4
kind: Remediation
spec:
  remediations:
  - problemType: Response time degradation
    actionsOnOpen:
    - {action: scaling, name: scaling, value: "1"}
""")
    dynatrace = dynatrace_standin.create_app(token="dt0c01.E2E")
    metrics = dynatrace[dynatrace_standin.METRICS]
    metrics[
        (
            rt_selector,
            "type(SERVICE),tag(keptn_project:sockshop),tag(keptn_stage:production),"
            "tag(keptn_service:carts),tag(keptn_deployment:primary)",
        )
    ] = lambda: [world.carts_state()["latency_ms"] * 1000]  # in µs
    metrics[(errors_selector, "type(SERVICE),tag(keptn_service:carts)")] = lambda: [0.0]
    with processes.serve_in_thread(dynatrace) as dynatrace_url:
        env = world.receiver_env(
            tmp_path / "journal.db",
            RECEIVER_DYNATRACE_URL=dynatrace_url,
            RECEIVER_DYNATRACE_TOKEN="dt0c01.E2E",
        )
        with processes.receiver(config, port=world.receiver_port, log=tmp_path / "r.log", **env):
            world.carts(load=3)
            sent = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "receiver",
                    "send-test",
                    "dynatrace",
                    "--url",
                    f"http://127.0.0.1:{world.receiver_port}",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                env=os.environ | {"RECEIVER_AUTH_TOKEN": TOKEN},
            )
            assert sent.returncode == 0, sent.stderr
            done = finished(world, where=lambda r: r["source"] == "dynatrace")
        queries = dynatrace[dynatrace_standin.REQUESTS]
    assert (done["state"], done["title"]) == ("healed", "Response time degradation")
    assert done["steps"][0]["evaluation"]["result"] == "pass"
    assert world.replicas() == 2
    assert queries[0]["entitySelector"].startswith(
        "type(SERVICE),tag(keptn_project:sockshop),tag(keptn_stage:production)"
    )
    assert all(q["resolution"] == "Inf" for q in queries)


def test_3_feature_flag_switched_off_heals_the_failure_rate(
    world: stack.World, tmp_path: Path
) -> None:
    world.reset()
    env = world.receiver_env(tmp_path / "journal.db")
    with processes.receiver(
        config_copy(tmp_path), port=world.receiver_port, log=tmp_path / "receiver.log", **env
    ):
        assert world.unleash is not None
        world.unleash.admin(
            "POST",
            "/api/admin/projects/default/features/EnablePromotion/environments/production/on",
        )
        done = finished(world)
    assert (done["state"], done["title"]) == ("healed", "error_rate")
    (step,) = done["steps"]
    assert (step["action"], step["result"]) == ("toggle-feature", "succeeded")
    assert step["detail"] == "Unleash default/production: EnablePromotion on → off"
    err = next(o for o in step["evaluation"]["objectives"] if o["sli"] == "error_rate")
    assert err["value"] == 0.0
    assert world.unleash is not None
    assert world.unleash.enabled("EnablePromotion") is False  # the admin API
    assert world.carts_state()["promotion"] is False  # the app, through UnleashClient
    assert world.replicas() == 1  # nothing else was touched


def test_1b_a_heal_its_source_resolves_within_seconds_is_credited_with_the_default_wait(
    world: stack.World, tmp_path: Path
) -> None:
    """Keptn's ten-minute wait and window, as users get them: the real Alertmanager resolves
    the alert seconds after the scaling, and the SLO is judged then on the time since the
    action, not on ten minutes nearly all before it (which called such heals failures and
    paged a person for a healed service)."""
    world.reset()
    env = world.receiver_env(
        tmp_path / "journal.db",
        RECEIVER_REMEDIATION_WAIT="10m",
        RECEIVER_REMEDIATION_EVALUATION_WINDOW="10m",
    )
    with processes.receiver(
        config_copy(tmp_path), port=world.receiver_port, log=tmp_path / "receiver.log", **env
    ):
        started = time.monotonic()
        world.carts(load=3)
        done = finished(world, within=60)
    assert time.monotonic() - started < 60  # the resolve ended the ten-minute wait
    assert (done["state"], done["problem_state"]) == ("healed", "resolved")
    (step,) = done["steps"]
    assert (step["action"], step["verdict"]) == ("scaling", "healed")
    window = step["evaluation"]["window"]
    assert window["start"] == step["ended_at"]  # from the action on, nothing before it
    seconds = (
        datetime.datetime.fromisoformat(window["end"])
        - datetime.datetime.fromisoformat(window["start"])
    ).total_seconds()
    assert 2 <= seconds < 60


def test_4_when_nothing_helps_the_next_action_runs_then_people_are_called(
    world: stack.World, tmp_path: Path
) -> None:
    world.reset()
    config = config_copy(tmp_path, remediation=SCALE_THEN_RESTART)
    world.grant(config)  # a configuration that restarts is granted the Deployment's patch
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    with processes.serve_in_thread(app) as hook_url:
        env = world.receiver_env(
            tmp_path / "journal.db", RECEIVER_ESCALATION_WEBHOOK_URL=f"{hook_url}/hook"
        )
        with processes.receiver(config, port=world.receiver_port, log=tmp_path / "r.log", **env):
            world.carts(fixed_ms=1500)  # slow whatever the replicas
            done = finished(world, within=90)
    assert done["state"] == "escalated"
    assert [(s["action"], s["result"], s["verdict"]) for s in done["steps"]] == [
        ("scaling", "succeeded", "next"),
        ("restart", "succeeded", "next"),
        ("escalate", "succeeded", "escalated"),
    ]
    (document,) = received
    assert document["problem"]["title"] == "response_time_p90"
    assert document["evaluation"]["result"] == "fail"
    # What the world saw, not only what the receiver says: one more replica, one rollout.
    assert world.replicas() == 2
    assert world.restarted_at() == done["steps"][1]["data"]["restarted_at"]
    assert [path.rsplit("/", 1)[-1] for _, path in world.kube_writes()] == [
        "scale",
        "carts-primary",
    ]


def test_5_killed_mid_wait_it_resumes_heals_and_scales_back_once_resolved(
    world: stack.World, tmp_path: Path
) -> None:
    world.reset()
    config = config_copy(tmp_path)
    env = world.receiver_env(
        tmp_path / "journal.db",
        RECEIVER_REMEDIATION_WAIT="8s",
        RECEIVER_SCALING_SCALE_BACK_AFTER="2s",
    )
    log = tmp_path / "receiver.log"
    with processes.receiver(config, port=world.receiver_port, log=log, **env) as first:
        world.carts(load=3)
        in_the_wait(world)
        first.kill()  # SIGKILL in the wait: nothing flushed, nothing closed
        first.wait()
    assert world.replicas() == 2
    with processes.receiver(config, port=world.receiver_port, log=log, **env):
        done = finished(world)
        assert done["state"] == "healed"
        assert world.replicas() == 2
        # The carts are fast now: the alert resolves, and 2 s later the replica goes back.
        deadline = time.monotonic() + 60
        while world.replicas() != 1:
            assert time.monotonic() < deadline, world.remediation(done["id"])
            time.sleep(0.25)
        back = world.remediation(done["id"])
    assert [(s["action"], s["result"]) for s in back["steps"]] == [
        ("scaling", "succeeded"),
        ("scale-back", "succeeded"),
    ]
    assert back["problem_state"] == "resolved"
    assert len([w for w in world.kube_writes() if w[1].endswith("/scale")]) == 2  # up, down


def test_6_a_person_cancels_a_remediation_and_its_next_action_never_runs(
    world: stack.World, tmp_path: Path
) -> None:
    world.reset()
    config = config_copy(tmp_path, remediation=SCALE_THEN_RESTART)
    env = world.receiver_env(tmp_path / "journal.db", RECEIVER_REMEDIATION_WAIT="30s")
    with processes.receiver(config, port=world.receiver_port, log=tmp_path / "r.log", **env):
        world.carts(fixed_ms=1500)  # slow whatever the replicas: the scaling will not help
        in_the_wait(world)
        (waiting,) = world.remediations()
        request = urllib.request.Request(
            f"http://127.0.0.1:{world.receiver_port}/api/v1/remediations/{waiting['id']}/cancel",
            method="POST",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            assert answer.status == 202
        done = finished(world)
    assert (done["state"], done["reason"]) == ("cancelled", "cancelled by hand after 1 action")
    assert world.replicas() == 2
    assert world.restarted_at() is None  # the restart never ran
    assert len(world.kube_writes()) == 1
