"""A real Prometheus (Debian's package) scraping the `carts` stand-in, once per test session.

Prometheus takes about 5 s to its first scrape, so the stack is shared; tests set the app's
latency and error share through `carts.control(...)` and wait for the window to follow.
The alerting rules it loads are what `receiver rules --format prometheus` generates from the
example configuration (with a 2 s window and `for: 1s` so that tests are quick).
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

from tests import processes

WINDOW = "2s"
SCRAPE = "200ms"

PROMETHEUS_CONFIG = """
global:
  scrape_interval: {scrape}
  evaluation_interval: {scrape}
rule_files: [{rules}]
scrape_configs:
- job_name: carts-sockshop-production
  static_configs:
  - targets: ["127.0.0.1:{app_port}"]
"""


@dataclasses.dataclass
class Stack:
    prometheus_url: str
    app_url: str
    rules_file: Path

    def control(self, **state: float) -> None:
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.app_url}/control",
            data=json.dumps(state).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            pass

    def query(self, expression: str) -> Any:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return json.load(response)["data"]["result"]

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/alerts", timeout=5) as r:  # noqa: S310
            alerts: list[dict[str, Any]] = json.load(r)["data"]["alerts"]
            return alerts

    def settle(self, seconds: float = 3.0) -> None:
        """Wait until the window holds only samples of the latest state (window + scrapes)."""
        time.sleep(seconds)


def generate_rules(config_dir: Path, target: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "receiver",
            "rules",
            "--config",
            str(config_dir),
            "--format",
            "prometheus",
            "--for",
            "1s",
            "--window",
            WINDOW,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=processes.receiver_env(),
        check=True,
    )
    target.write_text(result.stdout)


@contextlib.contextmanager
def running(workdir: Path, config_dir: Path) -> Iterator[Stack]:
    app_port, prometheus_port = processes.free_port(), processes.free_port()
    rules = workdir / "rules.yml"
    generate_rules(config_dir, rules)
    config = workdir / "prometheus.yml"
    config.write_text(
        PROMETHEUS_CONFIG.format(scrape=SCRAPE, rules=json.dumps(str(rules)), app_port=app_port)
    )
    log = (workdir / "stack.log").open("wb")
    app = subprocess.Popen(
        [sys.executable, "-m", "tests.apps.carts", str(app_port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).parent.parent,
    )
    prometheus = subprocess.Popen(
        [
            processes.binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack = Stack(
        prometheus_url=f"http://127.0.0.1:{prometheus_port}",
        app_url=f"http://127.0.0.1:{app_port}",
        rules_file=rules,
    )
    try:
        processes.wait_http(f"{stack.app_url}/healthz", process=app)
        processes.wait_http(f"{stack.prometheus_url}/-/ready", process=prometheus, timeout=30)
        deadline = time.monotonic() + 30
        while not stack.query('up{job="carts-sockshop-production"} == 1'):
            if time.monotonic() > deadline:
                raise TimeoutError("Prometheus did not scrape the carts stand-in within 30 s")
            time.sleep(0.2)
        yield stack
    finally:
        for process in (prometheus, app):
            process.terminate()
        for process in (prometheus, app):
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(workdir / "tsdb", ignore_errors=True)
