"""A real Alertmanager (Debian's prometheus-alertmanager) delivers to a real receiver process.

Checks the contract the unit tests assume: Alertmanager's v4 webhook body, bearer auth from
`http_config`, several alerts in one group, and the resolve it sends when an alert ends.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import processes
from tests.conftest import TOKEN


@pytest.fixture
def alertmanager(tmp_path: Path, config_dir: Path) -> Iterator[tuple[int, int]]:
    """(alertmanager port, receiver port), both running on loopback."""
    receiver_port, am_port = processes.free_port(), processes.free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(processes.alertmanager_config(receiver_port, TOKEN))
    env = {"RECEIVER_STORE": str(tmp_path / "journal.db"), "RECEIVER_AUTH_TOKEN": TOKEN}
    with processes.receiver(config_dir, port=receiver_port, log=tmp_path / "r.log", **env):
        log = (tmp_path / "am.log").open("wb")
        am = subprocess.Popen(
            [
                processes.binary("prometheus-alertmanager"),
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am-data'}",
                "--cluster.listen-address=",
                f"--web.listen-address=127.0.0.1:{am_port}",
                f"--web.external-url=http://127.0.0.1:{am_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            processes.wait_http(f"http://127.0.0.1:{am_port}/-/ready", process=am)
            yield am_port, receiver_port
        finally:
            am.terminate()
            am.wait(timeout=10)
            log.close()


def post_alerts(am_port: int, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{am_port}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200


def problems(receiver_port: int) -> dict[str, dict[str, Any]]:
    url = f"http://127.0.0.1:{receiver_port}/api/v1/problems"
    with urllib.request.urlopen(url, timeout=10) as response:
        return {p["title"]: p for p in json.load(response)["problems"]}


def wait_for(predicate: Any, receiver_port: int, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = problems(receiver_port)
        if predicate(seen):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout} s; problems: {problems(receiver_port)}")


def alert(
    name: str, *, summary: str | None, ends: datetime.datetime | None = None
) -> dict[str, Any]:
    labels = {
        "alertname": name,
        "project": "sockshop",
        "stage": "production",
        "service": "carts",
        "severity": "webhook",
    }
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": summary} if summary else {},
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    if ends is not None:
        body["endsAt"] = ends.isoformat()
    return body


def test_alerts_delivered_by_a_real_alertmanager_become_problems_and_resolve(
    alertmanager: tuple[int, int],
) -> None:
    am_port, receiver_port = alertmanager
    post_alerts(
        am_port,
        [
            alert("response_time_p90", summary="response_time_p90"),
            alert("HighErrorRate", summary=None),
        ],
    )
    seen = wait_for(lambda s: len(s) == 2, receiver_port)
    assert seen["response_time_p90"]["state"] == "open"
    assert seen["response_time_p90"]["service"] == "carts"
    assert seen["HighErrorRate"]["state"] == "open"  # no summary: the alertname is the title
    assert seen["HighErrorRate"]["ignored_reason"] is None
    assert len(seen["response_time_p90"]["key"]) == 16  # Alertmanager's fingerprint

    # An alert that ends: Alertmanager sends it again as resolved.
    ended = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    post_alerts(am_port, [alert("response_time_p90", summary="response_time_p90", ends=ended)])
    seen = wait_for(lambda s: s["response_time_p90"]["state"] == "resolved", receiver_port)
    assert seen["HighErrorRate"]["state"] == "open"
