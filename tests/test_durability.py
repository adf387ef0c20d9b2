"""Nothing acknowledged is lost: SIGKILL right after a 2xx, then restart from the same journal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests import processes
from tests.conftest import AUTH, TOKEN, payload


def post(port: int, source: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/{source}",
        data=json.dumps(body).encode(),
        headers=AUTH | {"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        status: int = response.status
        return status


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


def test_a_problem_acknowledged_just_before_sigkill_is_there_after_restart(
    config_dir: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "journal.db")
    port = processes.free_port()
    log = tmp_path / "receiver.log"
    firing = payload("alertmanager-firing.json")
    env = {"RECEIVER_STORE": store, "RECEIVER_AUTH_TOKEN": TOKEN}
    with processes.receiver(config_dir, port=port, log=log, **env) as process:
        keys = []
        for index in range(20):
            firing["alerts"][0]["fingerprint"] = f"fp-{index}"
            keys.append(f"fp-{index}")
            assert post(port, "alertmanager", firing) == 200
        assert post(port, "dynatrace", payload("dynatrace-open-plain.json")) == 200
        process.send_signal(signal.SIGKILL)  # no chance to flush or close anything
        process.wait(timeout=10)
    written = log.read_text()
    assert '"event": "journal.opened"' in written  # the log was written to at all
    assert '"event": "webhook.recorded"' in written
    assert TOKEN not in written  # credentials never reach the log

    with processes.receiver(config_dir, port=port, log=log, **env):
        listed = get(port, "/api/v1/problems?limit=1000")["problems"]
        assert {p["key"] for p in listed if p["source"] == "alertmanager"} == set(keys)
        assert [p["title"] for p in listed if p["source"] == "dynatrace"] == [
            "Failure rate increase"
        ]
        # The restarted service keeps counting repeats on the same problem.
        assert post(port, "dynatrace", payload("dynatrace-open-plain.json")) == 200
        repeated = get(port, "/api/v1/problems?state=open&limit=1000")["problems"]
        assert [p["repeats"] for p in repeated if p["source"] == "dynatrace"] == [1]


def test_a_second_receiver_on_the_same_journal_exits_with_a_clear_message(
    config_dir: Path, tmp_path: Path
) -> None:
    env = {"RECEIVER_STORE": str(tmp_path / "journal.db"), "RECEIVER_AUTH_TOKEN": TOKEN}
    with processes.receiver(config_dir, port=processes.free_port(), log=tmp_path / "1.log", **env):
        second = subprocess.run(
            [sys.executable, "-m", "receiver", "serve", "--config", str(config_dir),
             "--port", str(processes.free_port())],
            capture_output=True,
            text=True,
            timeout=30,
            env=processes.receiver_env(**env),
        )  # fmt: skip
    assert second.returncode == 2
    assert "is in use by receiver pid" in second.stderr
    assert "Traceback" not in second.stderr
