"""`receiver send-test`, `receiver status` and `receiver manifests` in-process, against a real
receiver app served on loopback (the end-to-end tests run them as subprocesses)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import prometheus_client as prom
import pytest

from receiver import cli, configuration, server
from tests import processes
from tests.conftest import TOKEN, make_settings


@pytest.fixture
def receiver_url(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    app = server.create_app(
        configuration.with_settings(
            config_dir, make_settings(tmp_path, auth_basic_username="alertmanager")
        ),
        registry=prom.CollectorRegistry(),
    )
    with processes.serve_in_thread(app) as url:
        yield url


def test_send_test_posts_with_the_configured_token_and_prints_the_answer(
    receiver_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_AUTH_TOKEN", TOKEN)
    assert cli.main(["send-test", "dynatrace", "--url", receiver_url]) == 0
    status, _, body = capsys.readouterr().out.partition(" ")
    assert status == "200"
    (recorded,) = json.loads(body)["recorded"]
    assert recorded["outcome"] == "opened"
    assert cli.main(["send-test", "dynatrace", "--url", receiver_url, "--resolved"]) == 0
    status, _, body = capsys.readouterr().out.partition(" ")
    assert json.loads(body)["recorded"][0]["outcome"] == "resolved"


def test_send_test_with_basic_credentials(
    receiver_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECEIVER_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RECEIVER_AUTH_BASIC_USERNAME", "alertmanager")
    monkeypatch.setenv("RECEIVER_AUTH_BASIC_PASSWORD", "not-the-password")
    assert cli.main(["send-test", "alertmanager", "--url", receiver_url]) == 1
    assert capsys.readouterr().err.startswith("401 ")


def test_send_test_says_when_the_receiver_cannot_be_reached(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_AUTH_TOKEN", TOKEN)
    url = f"http://127.0.0.1:{processes.free_port()}"
    assert cli.main(["send-test", "alertmanager", "--url", url]) == 1
    assert f"receiver: cannot reach {url}/webhooks/alertmanager" in capsys.readouterr().err


def test_send_test_refuses_broken_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "receiver.yaml").write_text("server: {port: eighty}\n")
    assert cli.main(["send-test", "alertmanager", "--config", str(tmp_path)]) == 2
    assert "server.port: expected a whole number" in capsys.readouterr().err


def test_status_lists_nothing_yet_then_as_json(
    receiver_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_AUTH_TOKEN", TOKEN)
    assert cli.main(["status", "--url", receiver_url, "--state", "running"]) == 0
    assert capsys.readouterr().out == "no remediations\n"
    assert cli.main(["status", "--url", receiver_url, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"remediations": []}


def test_status_of_an_unknown_remediation_is_the_servers_answer(
    receiver_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--url", receiver_url, "999"]) == 2
    err = capsys.readouterr().err
    assert f"receiver: cannot read {receiver_url}/api/v1/remediations/999: HTTP 404" in err
    assert "no such remediation" in err


def test_status_says_when_the_receiver_cannot_be_reached(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{processes.free_port()}"
    assert cli.main(["status", "--url", url]) == 2
    assert f"receiver: cannot read {url}/api/v1/remediations:" in capsys.readouterr().err


def test_manifests_writes_the_kustomize_files(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "manifests"
    argv = ["manifests", "--config", str(config_dir), "--output", str(output)]
    assert cli.main(argv) == 0
    written = sorted(p.relative_to(output).as_posix() for p in output.rglob("*.yaml"))
    assert written == [
        "base/generated/config-volume.yaml",
        "base/generated/config.yaml",
        "base/generated/networkpolicy.yaml",
        "base/generated/rbac.yaml",
        "overlays/monitoring/prometheus-rule.yaml",
    ]
    assert capsys.readouterr().out.count("wrote ") == 5


def test_manifests_refuse_a_broken_configuration(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (config_dir / "receiver.yaml").write_text("scaling: {max_replicas: many}\n")
    assert cli.main(["manifests", "--config", str(config_dir), "--output", str(tmp_path)]) == 2
    assert "scaling.max_replicas: expected a whole number" in capsys.readouterr().err


def test_approve_reject_and_cancel_from_the_command_line(
    tmp_path: Path,
    config_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (config_dir / "sockshop" / "production" / "carts" / "remediation.yaml").write_text(
        "remediations:\n- {name: response_time_p90, approval: manual,"
        " actions: [{action: scaling, value: 1}]}\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    app = server.create_app(
        configuration.with_settings(config_dir, make_settings(tmp_path, remediation_cooldown=0.0)),
        registry=prom.CollectorRegistry(),
    )
    with processes.serve_in_thread(app) as url:
        monkeypatch.setenv("RECEIVER_AUTH_TOKEN", TOKEN)
        assert cli.main(["send-test", "alertmanager", "--url", url]) == 0
        deadline = time.monotonic() + 10
        while "awaiting_approval" not in capsys.readouterr().out:
            assert time.monotonic() < deadline, "never awaited approval"
            assert cli.main(["status", "--url", url, "--output", "json"]) == 0
            time.sleep(0.05)
        assert cli.main(["reject", "7", "--url", url]) == 1
        assert "receiver: reject 7: HTTP 404" in capsys.readouterr().err
        assert cli.main(["approve", "1", "--url", url]) == 0
        assert capsys.readouterr().out == "remediation 1: approved\n"
        assert cli.main(["approve", "1", "--url", url]) == 1  # decided already
        assert "HTTP 409" in capsys.readouterr().err
        monkeypatch.delenv("RECEIVER_AUTH_TOKEN")
        assert cli.main(["cancel", "1", "--url", url]) == 1  # writes need the token
        assert "HTTP 401" in capsys.readouterr().err
