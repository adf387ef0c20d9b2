"""Hot reload on a real `receiver serve`: SIGHUP, POST /-/reload and a change on disk put a
new configuration in force without a restart; a broken one is refused whole and the one in
force stays, said by the log, /readyz, the metric and the answer."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from receiver import server
from tests import processes
from tests.conftest import AUTH, TOKEN, payload

CARTS = Path("sockshop") / "production" / "carts"
ONE_RULE = "remediations:\n- {name: response_time_p90, actions: [{action: scaling, value: 1}]}\n"
TWO_RULES = ONE_RULE + "- {name: memory_leak, actions: [{action: restart}]}\n"


def call(port: int, path: str, *, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=AUTH | {"Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            text = response.read().decode()
            status: int = response.status
    except urllib.error.HTTPError as e:
        text, status = e.read().decode(), e.code
    return status, json.loads(text) if text.startswith(("{", "[")) else text


def fire(port: int, title: str, key: str) -> dict[str, Any]:
    body = payload("alertmanager-firing.json")
    body["alerts"][0] |= {"fingerprint": key}
    body["alerts"][0]["annotations"]["summary"] = title
    status, answer = call(port, "/webhooks/alertmanager", method="POST", body=body)
    assert status == 200, answer
    recorded: dict[str, Any] = answer["recorded"][0]
    return recorded


def metric(port: int, name: str) -> float:
    _, text = call(port, "/metrics")
    for line in str(text).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def until(condition: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "RECEIVER_STORE": str(tmp_path / "journal.db"),
        "RECEIVER_AUTH_TOKEN": TOKEN,
        "RECEIVER_REMEDIATION_COOLDOWN": "0s",
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
    }


def test_a_rule_added_on_disk_is_used_after_sighup(
    config_dir: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    (config_dir / CARTS / "remediation.yaml").write_text(ONE_RULE)
    port, log = processes.free_port(), tmp_path / "receiver.log"
    with processes.receiver(
        config_dir, port=port, log=log, RECEIVER_WATCH_CONFIG="0", **env
    ) as process:
        before = fire(port, "memory_leak", "fp-before")
        assert before["outcome"] == "opened"
        assert before["reason"].startswith("no rule in ")
        loaded_at = metric(port, "receiver_config_last_reload_success_timestamp_seconds")

        (config_dir / CARTS / "remediation.yaml").write_text(TWO_RULES)
        process.send_signal(signal.SIGHUP)
        until(
            lambda: (
                metric(port, "receiver_config_last_reload_success_timestamp_seconds") > loaded_at
            ),
            "reloaded after SIGHUP",
        )
        after = fire(port, "memory_leak", "fp-after")
        assert after["reason"] is None
        status, remediation = call(port, f"/api/v1/remediations/{after['remediation_id']}")
        assert (status, remediation["rule"]) == (200, "memory_leak")
        assert process.poll() is None  # the same process, no restart
    written = log.read_text()
    assert '"event": "config.reloaded"' in written
    assert written.count('"event": "receiver.starting"') == 1


def test_a_broken_configuration_is_refused_whole_and_the_one_in_force_stays(
    config_dir: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    port, log = processes.free_port(), tmp_path / "receiver.log"
    with processes.receiver(config_dir, port=port, log=log, RECEIVER_WATCH_CONFIG="0", **env):
        broken = config_dir / CARTS / "remediation.yaml"
        broken.write_text("remediations:\n- {name: x, actions: [{action: scaling, value: lots}]}\n")
        (config_dir / "receiver.yaml").write_text("remediation: {wait: soon}\n")
        status, answer = call(port, "/-/reload", method="POST")
        assert status == 400
        assert answer["error"] == "configuration refused; the one in force stays"
        assert f"{config_dir / 'receiver.yaml'}: remediation.wait: " in answer["problems"][0]
        assert metric(port, "receiver_config_last_reload_successful") == 0
        ready_status, ready = call(port, "/readyz")
        assert ready_status == 200  # still serving with the configuration in force
        assert ready["last_reload"].startswith(f"refused: {config_dir / 'receiver.yaml'}")
        # The old rules still decide.
        assert fire(port, "response_time_p90", "fp-old")["remediation_id"] is not None

        (config_dir / "receiver.yaml").unlink()
        broken.write_text(ONE_RULE)
        status, answer = call(port, "/-/reload", method="POST")
        assert (status, answer["reloaded"]) == (200, True)
        assert metric(port, "receiver_config_last_reload_successful") == 1
        assert "last_reload" not in call(port, "/readyz")[1]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310
        assert refused.value.code == 401  # reloading needs the credentials
        refused.value.close()
    written = log.read_text()
    assert '"event": "config.reload_refused"' in written
    assert f'"file": "{config_dir / "receiver.yaml"}", "path": "remediation.wait"' in written


def test_a_file_changed_on_disk_is_reloaded_without_being_asked(
    config_dir: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    (config_dir / CARTS / "remediation.yaml").write_text(ONE_RULE)
    port, log = processes.free_port(), tmp_path / "receiver.log"
    with processes.receiver(config_dir, port=port, log=log, RECEIVER_WATCH_CONFIG="200ms", **env):
        loaded_at = metric(port, "receiver_config_last_reload_success_timestamp_seconds")
        (config_dir / CARTS / "remediation.yaml").write_text(TWO_RULES)
        until(
            lambda: (
                metric(port, "receiver_config_last_reload_success_timestamp_seconds") > loaded_at
            ),
            "reloaded after the file changed",
        )
        assert fire(port, "memory_leak", "fp-watched")["remediation_id"] is not None
    assert '"event": "config.changed"' in log.read_text()


def test_a_configmap_swapped_through_its_symlink_is_seen(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as files linked through `..data`, which it points at a
    new directory when the ConfigMap changes: the watcher follows the links."""
    volume = tmp_path / "volume"
    (volume / "..2026_11_28_v1").mkdir(parents=True)
    (volume / "..2026_11_28_v1" / "remediation.yaml").write_text(ONE_RULE)
    os.symlink("..2026_11_28_v1", volume / "..data")
    os.symlink("..data/remediation.yaml", volume / "remediation.yaml")
    before = server.config_fingerprint(volume)
    (volume / "..2026_11_28_v2").mkdir()
    (volume / "..2026_11_28_v2" / "remediation.yaml").write_text(TWO_RULES)
    os.symlink("..2026_11_28_v2", volume / "..data_tmp")
    os.replace(volume / "..data_tmp", volume / "..data")  # atomically, as the kubelet does
    assert server.config_fingerprint(volume) != before
    os.symlink("..", volume / "..2026_11_28_v2" / "up")  # a loop: walked once, not forever
    assert server.config_fingerprint(volume)
