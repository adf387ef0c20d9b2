"""Keptn's own lighthouse test tables, run against our SLO parser and scorer.

The cases live in tests/conformance/keptn_lighthouse.yaml, restated from keptn/keptn 0.8.4
(each names its Go test); a case that differs from Keptn on purpose says so there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.slo import criteria, objectives, scoring

CASES: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "conformance" / "keptn_lighthouse.yaml").read_text()
)


def named(table: str, key: str = "name") -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "case", CASES[table], ids=[str(c.get(key, c.get("text"))) for c in CASES[table]]
    )


def as_written(slo: objectives.Slo) -> list[dict[str, Any]]:
    """The objectives as the test tables write them."""
    return [
        {
            "sli": o.sli,
            "weight": o.weight,
            "key_sli": o.key_sli,
            "pass": [[c.text for c in group] for group in o.pass_criteria],
            "warning": [[c.text for c in group] for group in o.warning_criteria],
        }
        for o in slo.objectives
    ]


@named("criteria", "text")
def test_criteria_strings_parse_as_keptn_parsed_them(case: dict[str, Any]) -> None:
    parsed = criteria.parse(case["text"])
    assert parsed.error is None
    assert (parsed.operator, parsed.number, parsed.relative) == (
        case["operator"],
        case["number"],
        case["relative"],
    )
    if case["relative"]:
        assert (parsed.kind is criteria.Kind.PERCENT, parsed.increase) == (
            case["percent"],
            case["increase"],
        )


@pytest.mark.parametrize(
    "case", CASES["values"], ids=lambda c: f"{c['measured']}{c['operator']}{c['expected']}"
)
def test_a_value_against_a_fixed_threshold(case: dict[str, Any]) -> None:
    parsed = criteria.parse(f"{case['operator']}{case['expected']}")
    assert (parsed.error is not None) == case.get("error", False)
    target = parsed.target(None)
    holds = target is not None and parsed.holds(case["measured"], target)
    assert holds is case["holds"]


@pytest.mark.parametrize(
    "case",
    CASES["criteria_sets"],
    ids=lambda c: f"{c['source']}:{c['value']}{c['pass']}{c['aggregate']}",
)
def test_criteria_sets_hold_as_keptn_held_them(case: dict[str, Any]) -> None:
    document = {
        "comparison": {
            "compare_with": "several_results",
            "include_result_with_score": "pass",
            "number_of_comparison_results": 2,
            "aggregate_function": case["aggregate"],
        },
        "objectives": [{"sli": "m", "pass": [{"criteria": group} for group in case["pass"]]}],
        "total_score": {"pass": "90%"},
    }
    slo, soft = objectives.parse(document, "slo.yaml")
    assert soft == []
    previous = [scoring.Previous(result="pass", values={"m": v}) for v in case["previous"]]
    (objective,) = scoring.evaluate(slo, {"m": case["value"]}, previous).objectives
    assert objective.status == ("pass" if case["holds"] else "fail")
    assert [t.target for t in objective.targets] == [pytest.approx(t) for t in case["targets"]]


@pytest.mark.parametrize("case", CASES["percentiles"], ids=lambda c: f"p{c['p']}")
def test_percentiles_with_keptns_rank(case: dict[str, Any]) -> None:
    assert scoring.percentile(case["values"], case["p"]) == pytest.approx(case["expected"])


@named("slo_files")
def test_slo_files_mean_what_keptn_read_in_them(case: dict[str, Any]) -> None:
    slo, soft = objectives.parse(yaml.safe_load(case["file"]), "slo.yaml")
    assert soft == []
    comparison = slo.comparison
    assert {
        "compare_with": comparison.compare_with or "single_result",
        "include_result_with_score": comparison.include_result_with_score.value,
        "number_of_comparison_results": comparison.number_of_comparison_results,
        "aggregate_function": comparison.aggregate_function,
    } == case["comparison"]
    assert slo.filter == CASES["slo_filter"]
    assert {"pass": slo.total_pass, "warning": slo.total_warning} == CASES["slo_total"]
    assert as_written(slo) == CASES["slo_objectives"]


def test_an_empty_spec_version_and_an_empty_objective_load_as_keptn_loaded_them() -> None:
    case = CASES["empty_entries"]
    slo, soft = objectives.parse(yaml.safe_load(case["file"]), "slo.yaml")
    assert soft == []
    assert as_written(slo) == case["objectives"]
    assert scoring.evaluate(slo, {"srt": 1.0}).result == "pass"  # only an info SLI


@named("evaluations")
def test_evaluations_score_as_keptns_lighthouse_scored_them(case: dict[str, Any]) -> None:
    slo, _ = objectives.parse(yaml.safe_load(case["slo"]), "slo.yaml")
    previous = [
        scoring.Previous(result=p["result"], values=p["values"]) for p in case.get("previous", [])
    ]
    evaluation = scoring.evaluate(slo, case["values"], previous)
    by_sli = {o.sli: o for o in evaluation.objectives}
    for expected in case.get("objectives", []):
        got = by_sli[expected["sli"]]
        assert (got.status, got.score) == (expected["status"], expected["score"]), expected["sli"]
        if "targets" in expected:
            assert [
                [t.criteria, None if t.target is None else pytest.approx(t.target), t.violated]
                for t in got.targets
            ] == expected["targets"]
    if "result" in case:
        assert evaluation.result == case["result"]
    if "score" in case:
        assert evaluation.score == pytest.approx(case["score"])
