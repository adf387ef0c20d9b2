"""`receiver slo evaluate` offline (exact interface), `receiver rules`, and `receiver check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import processes

SLO = """
spec_version: '1.0'
comparison: {compare_with: several_results, include_result_with_score: pass,
             number_of_comparison_results: 2, aggregate_function: avg}
objectives:
- sli: response_time_p90
  key_sli: true
  pass: [{criteria: ["<=+10%", "<600"]}]
  warning: [{criteria: ["<=800"]}]
- sli: error_rate
  weight: 2
  pass: [{criteria: ["<=0.05"]}]
- sli: throughput
total_score: {pass: "90%", warning: "75%"}
"""


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=processes.receiver_env(),
        cwd=cwd,
    )


def evaluate(
    tmp_path: Path, values: Any, previous: Any = None, slo: str = SLO
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "slo.yaml").write_text(slo)
    (tmp_path / "values.json").write_text(values if isinstance(values, str) else json.dumps(values))
    args = [
        "slo",
        "evaluate",
        "--slo",
        str(tmp_path / "slo.yaml"),
        "--values",
        str(tmp_path / "values.json"),
    ]
    if previous is not None:
        (tmp_path / "previous.json").write_text(json.dumps(previous))
        args += ["--previous", str(tmp_path / "previous.json")]
    return run(*args)


def test_offline_evaluation_prints_one_json_object(tmp_path: Path) -> None:
    result = evaluate(tmp_path, {"response_time_p90": 500, "error_rate": 0.01, "throughput": 9})
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["result"], document["score"]) == ("pass", 100.0)
    assert [
        (o["sli"], o["status"], o["score"], o["weight"], o["key_sli"])
        for o in document["objectives"]
    ] == [
        ("response_time_p90", "pass", 1.0, 1, True),
        ("error_rate", "pass", 2.0, 2, False),
        ("throughput", "info", 0.0, 1, False),
    ]
    assert document["objectives"][0]["targets"] == [  # warning's, then pass's, as Keptn
        {"criteria": "<=800", "target": 800, "violated": False},
        {"criteria": "<=+10%", "target": None, "violated": False},
        {"criteria": "<600", "target": 600, "violated": False},
    ]


def test_history_makes_relative_criteria_bite_and_a_key_sli_fails_all(tmp_path: Path) -> None:
    previous = [  # newest first; the fail is filtered out before the newest 2 are taken
        {"result": "fail", "values": {"response_time_p90": 100}},
        {"result": "pass", "values": {"response_time_p90": 400, "error_rate": 0.0}},
        {"result": "pass", "values": {"response_time_p90": 500, "error_rate": 0.0}},
        {"result": "pass", "values": {"response_time_p90": 10}},
    ]
    result = evaluate(
        tmp_path, {"response_time_p90": 550, "error_rate": 0.01, "throughput": None}, previous
    )
    document = json.loads(result.stdout)
    rt = document["objectives"][0]
    assert rt["status"] == "warning"  # 550 > avg(400, 500)·1.1 = 495
    assert rt["targets"][1] == {
        "criteria": "<=+10%",
        "target": pytest.approx(495),
        "violated": True,
    }
    assert document["score"] == 100 * 2.5 / 3
    assert document["result"] == "warning"
    slow = json.loads(
        evaluate(tmp_path, {"response_time_p90": 900, "error_rate": 0.0}, previous).stdout
    )
    assert slow["objectives"][0]["status"] == "fail"
    assert slow["result"] == "fail"  # the key SLI failed, whatever the score (66.7)


def test_null_values_fail_their_objective(tmp_path: Path) -> None:
    document = json.loads(evaluate(tmp_path, {"response_time_p90": 500, "error_rate": None}).stdout)
    assert (
        document["objectives"][1] | {"value": None, "status": "fail", "score": 0.0}
        == (document["objectives"][1])
    )
    assert document["result"] == "fail"


def test_a_missing_previous_file_means_no_history(tmp_path: Path) -> None:
    (tmp_path / "slo.yaml").write_text(SLO)
    (tmp_path / "values.json").write_text('{"response_time_p90": 500, "error_rate": 0}')
    result = run(
        "slo",
        "evaluate",
        "--slo",
        str(tmp_path / "slo.yaml"),
        "--values",
        str(tmp_path / "values.json"),
        "--previous",
        str(tmp_path / "nope.json"),
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["result"] == "pass"


def test_bad_input_files_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    cases = [
        ("{not json", None, SLO, "values.json: not valid JSON"),
        ('["a"]', None, SLO, "expected an object"),
        ('{"error_rate": "low"}', None, SLO, "error_rate: expected a number or null"),
        ("{}", {"result": "pass"}, SLO, "expected a list"),
        ("{}", [{"result": "great", "values": {}}], SLO, "[0].result: expected pass, warning"),
        ("{}", None, "objectives: {}", "slo.yaml: objectives: expected a list"),
        ("{}", None, "objectives: [\n", "invalid YAML"),
    ]
    for values, previous, slo, message in cases:
        result = evaluate(tmp_path, values, previous, slo)
        assert result.returncode == 2, (values, result.stdout)
        assert message in result.stderr, (message, result.stderr)
        assert result.stdout == ""


def test_rules_follow_keptn_and_combine_criteria(tmp_path: Path, config_dir: Path) -> None:
    carts = config_dir / "sockshop" / "production" / "carts"
    (carts / "slo.yaml").write_text("""
objectives:
- sli: response_time_p90
  pass: [{criteria: ["<=+10%", "<=600"]}]
- sli: error_rate
  pass: [{criteria: [">=0", "<0.05"]}, {criteria: ["<0.5"]}]
- sli: relative_only
  pass: [{criteria: ["<=+10%", "=0"]}]
total_score: {pass: "90%"}
""")
    (carts / "sli.yaml").write_text(
        "indicators:\n  response_time_p90: rt[$DURATION_SECONDS]\n"
        "  error_rate: a or b\n  relative_only: x\n"
    )
    result = run("rules", "--config", str(config_dir), "--for", "5m")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert (document["apiVersion"], document["kind"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    )
    (group,) = document["spec"]["groups"]
    assert group["name"] == "carts sockshop-production alerts"
    assert [(r["alert"], r["expr"], r["for"]) for r in group["rules"]] == [
        ("response_time_p90", "rt[180s] > 600", "5m"),
        ("error_rate", "(((a or b) < 0) or ((a or b) > 0.05)) and ((a or b) > 0.5)", "5m"),
    ]
    plain = yaml.safe_load(
        run("rules", "--config", str(config_dir), "--format", "prometheus").stdout
    )
    assert set(plain) == {"groups"}


def test_check_reports_slo_and_sli_problems(config_dir: Path) -> None:
    carts = config_dir / "sockshop" / "production" / "carts"
    (carts / "slo.yaml").write_text("""
objectives:
- sli: response_time_p90
  pass: [{criteria: ["about 600"]}]
- sli: throughput
total_score: {pass: "90%"}
""")
    (config_dir / "sockshop" / "sli.yaml").write_text("provider: datadog\nindicators: {x: y}\n")
    result = run("check", "--config", str(config_dir))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    slo = f"{carts}/slo.yaml"
    assert (
        f"{slo}: objectives[0].pass[0].criteria[0]: invalid criteria string: expected e.g. "
        "'<600' or '<=+10%'" in lines
    )
    assert (
        f"{slo}: objectives[1].sli: no query for 'throughput' in any sli.yaml of "
        "sockshop/production/carts, and datadog has no built-in of that name" in lines
    )
    assert (
        f"{config_dir}/sockshop/sli.yaml: provider: expected one of prometheus, dynatrace" in lines
    )
