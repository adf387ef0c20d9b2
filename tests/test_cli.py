"""`receiver check` as a user runs it: a subprocess, its output and exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def check(config_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", "check", "--config", str(config_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")} | env,
    )


def test_the_example_configuration_passes(config_dir: Path) -> None:
    result = check(config_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK (1 service(s))" in result.stdout


def test_every_problem_is_printed_as_file_path_message(config_dir: Path) -> None:
    (config_dir / "receiver.yaml").write_text("server:\n  port: x\nauth:\n  token: plain\n")
    carts = config_dir / "sockshop" / "production" / "carts"
    (carts / "slo.yaml").write_text("objectives: [\n")
    (carts / "sli.yml").write_text("indicators: {}\n")
    result = check(config_dir)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{config_dir}/receiver.yaml: server.port: expected a whole number, got 'x'" in lines
    assert any(
        line.startswith(f"{config_dir}/receiver.yaml: auth.token: secrets") for line in lines
    )
    assert any(
        line.startswith(f"{carts}/slo.yaml: line 2, column 1: invalid YAML") for line in lines
    )
    assert f"{carts}/sli.yml: ignored: the file must be named sli.yaml" in lines


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    result = check(tmp_path / "nope")
    assert result.returncode == 1
    assert "configuration directory does not exist" in result.stdout


def test_serve_refuses_to_start_without_credentials(config_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "receiver", "serve", "--config", str(config_dir), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
    )
    assert result.returncode == 2
    assert "RECEIVER_AUTH_TOKEN" in result.stderr


def test_remediation_files_are_checked_with_file_and_path(config_dir: Path) -> None:
    carts = config_dir / "sockshop" / "production" / "carts"
    (carts / "remediation.yaml").write_text("""
apiVersion: spec.keptn.sh/0.2.0
kind: Remediation
spec:
  remediations:
  - problemType: response_time_p90
    actionsOnOpen:
    - {action: scaling, value: lots}
    - {action: reboot}
  - problemType: Failure rate increase
    actionsOnOpen:
    - {action: toggle-feature, value: {EnablePromotion: maybe}}
""")
    (config_dir / "sockshop" / "production" / "remediation.yaml").write_text(
        "remediations:\n- name: x\n  actions:\n"
        "  - {action: featuretoggle, value: EnablePromotion}\n"
    )
    result = check(config_dir)
    assert result.returncode == 1
    file = f"{carts}/remediation.yaml"
    for line in (
        f"{file}: apiVersion: expected spec.keptn.sh/0.1.x, got 'spec.keptn.sh/0.2.0'",
        f"{file}: spec.remediations[0].actionsOnOpen[0].value: expected a replica delta such as"
        " +1, 1 or -1, got 'lots'",
        f"{file}: spec.remediations[1].actionsOnOpen[0].value: expected a flag name and on or"
        " off, got 'EnablePromotion': 'maybe'",
        f"{config_dir}/sockshop/production/remediation.yaml: remediations[0].actions[0].value:"
        " expected \"Name:on|off\", got 'EnablePromotion'",
    ):
        assert line in result.stdout.splitlines(), (line, result.stdout)
    # An action the receiver does not run is Keptn >= 0.7's custom action: a warning only.
    assert (
        f"warning: {file}: spec.remediations[0].actionsOnOpen[1].action: 'reboot' is not an"
        " action the receiver runs (scaling, featuretoggle, toggle-feature, restart, rollback,"
        " escalate), nor one mapped under actions.webhooks in receiver.yaml: a remediation"
        " reaching it records that it has no executor for it and moves on"
    ) in result.stdout.splitlines()
