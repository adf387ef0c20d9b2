"""The whole world of the tutorials on loopback, once per session: the carts demo app, a real
Prometheus (rules from `receiver rules`) alerting a real Alertmanager, which delivers to the
receiver's port; a real Unleash (the session's); the Kubernetes API stand-in.

Each test starts its own receiver process on that port, with its own configuration and
journal, and `reset()` returns the world to a healthy carts with one replica and the flag off.

Timing, seconds for the tutorials' minutes: alert rules look at the last 10 s (Keptn: 180 s)
and fire after 1 s (Keptn: 10 min); the receiver waits 6 s after an action (Keptn: 10 min)
and evaluates the last 3 s; a resolve is judged 2 s after the action at the soonest (the
receiver's default: a minute). The wait is shorter than the time the alert takes to resolve
after a fix, so the SLO evaluation, not the source, ends a remediation — except where a test
says otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import kube_standin, processes
from tests.conftest import EXAMPLE_CONFIG, TOKEN
from tests.unleash_server import Unleash

ROOT = Path(__file__).resolve().parent.parent.parent
NS, DEPLOYMENT = "sockshop-production", "carts-primary"

PROMETHEUS = """
global: {{scrape_interval: 200ms, evaluation_interval: 200ms}}
rule_files: [{rules}]
alerting:
  alertmanagers:
  - static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]
scrape_configs:
- job_name: carts-sockshop-production
  static_configs: [{{targets: ["127.0.0.1:{app_port}"]}}]
"""


def _request(url: str, body: Any = None, method: str | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method or ("POST" if body is not None else "GET"),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


@dataclasses.dataclass
class World:
    kube_url: str
    app_url: str
    prometheus_url: str
    receiver_port: int
    kubeconfig: Path
    unleash: Unleash | None  # None: the demo, which needs no feature flag

    def carts(self, **state: float) -> dict[str, Any]:
        result: dict[str, Any] = _request(f"{self.app_url}/control", state)
        return result

    def carts_state(self) -> dict[str, Any]:
        result: dict[str, Any] = _request(f"{self.app_url}/state")
        return result

    def replicas(self) -> int:
        state = _request(f"{self.kube_url}/_standin/state")
        replicas: int = state["deployments"][f"{NS}/{DEPLOYMENT}"]
        return replicas

    def restarted_at(self) -> str | None:
        state = _request(f"{self.kube_url}/_standin/state")
        stamp: str | None = state["restarted_at"][f"{NS}/{DEPLOYMENT}"]
        return stamp

    def kube_writes(self) -> list[list[str]]:
        writes: list[list[str]] = _request(f"{self.kube_url}/_standin/state")["writes"]
        return writes

    def firing(self) -> list[str]:
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/alerts", timeout=5) as r:  # noqa: S310
            return [
                a["labels"]["alertname"]
                for a in json.load(r)["data"]["alerts"]
                if a["state"] in ("firing", "pending")
            ]

    def reset(self) -> None:
        """Healthy carts, one replica, flag off; wait until no alert is pending or firing."""
        self.carts(load=1, base_ms=300, fixed_ms=0)
        if self.unleash is not None:
            self.unleash.admin(
                "POST",
                "/api/admin/projects/default/features/EnablePromotion/environments/production/off",
            )
        _request(f"{self.kube_url}/_standin/reset", {})
        _request(
            f"{self.kube_url}/_standin/deployments",
            {"namespace": NS, "name": DEPLOYMENT, "replicas": 1},
        )
        deadline = time.monotonic() + 30
        while self.firing() or self.carts_state()["promotion"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the world did not calm down: {self.firing()}")
            time.sleep(0.2)

    def grant(self, config_dir: Path) -> None:
        """Enforce the RBAC `receiver manifests` renders for `config_dir` (until reset)."""
        _request(f"{self.kube_url}/_standin/roles", kube_standin.roles_for(config_dir))

    def remediations(self) -> list[dict[str, Any]]:
        """What the receiver on `receiver_port` lists, newest first."""
        listed: list[dict[str, Any]] = _request(
            f"http://127.0.0.1:{self.receiver_port}/api/v1/remediations"
        )["remediations"]
        return listed

    def remediation(self, remediation_id: int) -> dict[str, Any]:
        timeline: dict[str, Any] = _request(
            f"http://127.0.0.1:{self.receiver_port}/api/v1/remediations/{remediation_id}"
        )
        return timeline

    def receiver_env(self, store: Path, **extra: str) -> dict[str, str]:
        flags = (
            {}
            if self.unleash is None
            else {
                "RECEIVER_UNLEASH_URL": self.unleash.url,
                "RECEIVER_UNLEASH_TOKEN": self.unleash.admin_token,
            }
        )
        return (
            flags
            | {
                "RECEIVER_STORE": str(store),
                "RECEIVER_AUTH_TOKEN": TOKEN,
                "KUBECONFIG": str(self.kubeconfig),
                "RECEIVER_PROMETHEUS_URL": self.prometheus_url,
                "RECEIVER_REMEDIATION_WAIT": "6s",
                "RECEIVER_REMEDIATION_EVALUATION_WINDOW": "3s",
                "RECEIVER_REMEDIATION_MIN_EVALUATION_WINDOW": "2s",
                "RECEIVER_REMEDIATION_COOLDOWN": "0s",
            }
            | extra
        )


@contextlib.contextmanager
def running(workdir: Path, unleash: Unleash | None) -> Iterator[World]:
    kube_port, app_port, prometheus_port, am_port, receiver_port = (
        processes.free_port() for _ in range(5)
    )
    config = workdir / "config"
    shutil.copytree(EXAMPLE_CONFIG, config)
    rules = workdir / "rules.yml"
    rules.write_text(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "receiver",
                "rules",
                "--config",
                str(config),
                "--format",
                "prometheus",
                "--for",
                "1s",
                "--window",
                "10s",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env=processes.receiver_env(),
        ).stdout
    )
    (workdir / "prometheus.yml").write_text(
        PROMETHEUS.format(rules=json.dumps(str(rules)), am_port=am_port, app_port=app_port)
    )
    (workdir / "alertmanager.yml").write_text(processes.alertmanager_config(receiver_port, TOKEN))
    if unleash is not None:
        status, _ = unleash.admin("GET", "/api/admin/projects/default/features/EnablePromotion")
        if status != 200:
            unleash.create_flag("EnablePromotion", enabled_in=None)
    kube_url = f"http://127.0.0.1:{kube_port}"
    log = (workdir / "world.log").open("wb")
    commands = [
        [sys.executable, "-m", "tests.kube_standin", str(kube_port), f"{NS}/{DEPLOYMENT}=1"],
        [
            sys.executable,
            "-m",
            "tests.e2e.carts",
            "--port",
            str(app_port),
            "--kube",
            kube_url,
            "--token",
            kube_standin.TOKEN,
            *(
                ["--unleash", unleash.url, "--unleash-token", unleash.client_token]
                if unleash is not None
                else []
            ),
        ],
        [
            processes.binary("prometheus-alertmanager"),
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'am'}",
            "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{am_port}",
        ],
        [
            processes.binary("prometheus"),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
    ]
    children = [
        subprocess.Popen(c, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT) for c in commands
    ]
    world = World(
        kube_url=kube_url,
        app_url=f"http://127.0.0.1:{app_port}",
        prometheus_url=f"http://127.0.0.1:{prometheus_port}",
        receiver_port=receiver_port,
        kubeconfig=kube_standin.write_kubeconfig(workdir / "kubeconfig", kube_url),
        unleash=unleash,
    )
    try:
        processes.wait_http(f"{kube_url}/_standin/state", process=children[0])
        processes.wait_http(f"{world.app_url}/state", process=children[1])
        processes.wait_http(f"http://127.0.0.1:{am_port}/-/ready", process=children[2])
        processes.wait_http(f"{world.prometheus_url}/-/ready", process=children[3], timeout=30)
        query = urllib.parse.urlencode({"query": 'up{job="carts-sockshop-production"} == 1'})
        deadline = time.monotonic() + 30
        while not _request(f"{world.prometheus_url}/api/v1/query?{query}")["data"]["result"]:
            if time.monotonic() > deadline:
                raise TimeoutError("Prometheus did not scrape carts within 30 s")
            time.sleep(0.2)
        yield world
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=20)
        log.close()
