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

    def settle(self, *, latency_ms: float, error_ratio: float, within: float = 20.0) -> None:
        """Wait until Prometheus' 2 s window holds only samples of the state the app was set
        to: p90 in the latency's histogram bucket, the error ratio close to the set one —
        asked of Prometheus itself, not guessed with a sleep."""
        p90 = (
            "histogram_quantile(0.9, sum by(le) (rate(http_response_time_milliseconds_bucket"
            f'{{job="carts-sockshop-production"}}[{WINDOW}])))'
        )
        errors = (
            'sum(rate(http_requests_total{job="carts-sockshop-production",status=~"5.."}'
            f"[{WINDOW}])) or vector(0)"
        )
        total = f'sum(rate(http_requests_total{{job="carts-sockshop-production"}}[{WINDOW}]))'
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            seen_p90, seen_errors, seen_total = (
                _scalar(self.query(expression)) for expression in (p90, errors, total)
            )
            if (
                seen_p90 is not None
                and abs(seen_p90 - latency_ms) <= 50
                and seen_total
                and seen_errors is not None
                and abs(seen_errors / seen_total - error_ratio) <= (0.03 if error_ratio else 0)
            ):
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"Prometheus never showed p90 {latency_ms} ms and error ratio {error_ratio}"
            f" within {within:g} s"
        )


def _scalar(result: Any) -> float | None:
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: no traffic in the window yet


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
