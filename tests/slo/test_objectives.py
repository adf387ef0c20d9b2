from __future__ import annotations

from typing import Any

import pytest
import yaml

from receiver.errors import ConfigError
from receiver.slo import objectives
from receiver.slo.objectives import Include


def parse(text: str) -> objectives.Slo:
    slo, _ = objectives.parse(yaml.safe_load(text), "slo.yaml")
    return slo


def test_without_comparison_keptn_defaults_apply() -> None:
    slo = parse("objectives: []\n")
    c = slo.comparison
    assert (
        c.compare_with,
        c.include_result_with_score,
        c.number_of_comparison_results,
        c.aggregate_function,
    ) == ("single_result", Include.ALL, 1, "avg")
    assert c.previous_count == 1


def test_a_comparison_with_fields_left_out_gets_keptns_field_defaults() -> None:
    c = parse("comparison: {compare_with: several_results}\nobjectives: []\n").comparison
    assert (c.include_result_with_score, c.number_of_comparison_results, c.aggregate_function) == (
        Include.ALL,
        3,
        "avg",
    )
    assert c.previous_count == 3


def test_single_result_compares_with_one_whatever_the_number_says() -> None:
    text = "comparison: {compare_with: single_result, number_of_comparison_results: 5}\n"
    assert parse(text + "objectives: []\n").comparison.previous_count == 1


def test_several_results_compares_with_the_number_given() -> None:
    text = "comparison: {compare_with: several_results, number_of_comparison_results: 5}\n"
    assert parse(text + "objectives: []\n").comparison.previous_count == 5


def test_weight_zero_or_missing_is_one_and_display_name_defaults_to_the_sli() -> None:
    slo = parse(
        "objectives:\n- {sli: a, weight: 0}\n- {sli: b}\n- {sli: c, weight: 3, displayName: C}\n"
    )
    assert [(o.weight, o.display_name) for o in slo.objectives] == [(1, "a"), (1, "b"), (3, "C")]


def test_the_keptn_tutorial_slo_loads() -> None:
    slo = parse("""
spec_version: '0.1.1'
filter: {handler: ItemsController.addToCart, id: "'abc'"}
comparison:
  compare_with: single_result
  include_result_with_score: pass
  number_of_comparison_results: 1
  aggregate_function: avg
objectives:
- sli: response_time_p90
  displayName: Response time P90
  key_sli: false
  pass:
  - criteria: ["<=+10%", "<600"]
  warning:
  - criteria: ["<=800"]
total_score: {pass: "90%", warning: "75%"}
""")
    (objective,) = slo.objectives
    assert [c.text for c in objective.pass_criteria[0]] == ["<=+10%", "<600"]
    assert (slo.total_pass, slo.total_warning) == (90, 75)
    assert slo.filter == {"handler": "ItemsController.addToCart", "id": "'abc'"}


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ([1], "", "expected a mapping with objectives"),
        ({"objectives": {}}, "objectives", "expected a list"),
        ({"objectives": [3]}, "objectives[0]", "expected a mapping with sli, pass, warning"),
        ({"objectives": [{"weight": 1}]}, "objectives[0].sli",
         "missing: the name of an indicator in sli.yaml"),
        ({"objectives": [{"sli": "a", "weight": "x"}]}, "objectives[0].weight",
         "expected a whole number, got 'x'"),
        ({"objectives": [{"sli": "a", "key_sli": "yes"}]}, "objectives[0].key_sli",
         "expected true or false, got 'yes'"),
        ({"objectives": [{"sli": "a", "pass": {"criteria": ["<5"]}}]}, "objectives[0].pass",
         "expected a list of {criteria: [...]}"),
        ({"objectives": [{"sli": "a", "pass": [{"criteria": "<5"}]}]},
         "objectives[0].pass[0].criteria", "expected a list of criteria strings such as '<600'"),
        ({"objectives": [{"sli": "a", "pass": [{"criteria": ["<5"]}]}]}, "total_score.pass",
         "missing: no target score defined"),
        ({"comparison": 3}, "comparison", "expected a mapping"),
        ({"comparison": {"aggregate_function": "p99"}}, "comparison.aggregate_function",
         "expected one of avg, p50, p90, p95, got 'p99'"),
        ({"comparison": {"include_result_with_score": "some"}},
         "comparison.include_result_with_score",
         "expected pass, pass_or_warn or all, got 'some'"),
        ({"comparison": {"compare_with": "best"}}, "comparison.compare_with",
         "expected single_result or several_results, got 'best'"),
        ({"comparison": {"number_of_comparison_results": "x"}},
         "comparison.number_of_comparison_results", "expected a whole number >= 1, got 'x'"),
        ({"total_score": 5}, "total_score", "expected a mapping with pass and warning"),
        ({"total_score": {"pass": "ninety"}}, "total_score.pass",
         "expected a percentage such as '90%', got 'ninety'"),
        ({"spec_version": "2.0"}, "spec_version", "expected '1.0' or '0.1.x', got '2.0'"),
        ({"filter": [1]}, "filter", "expected a mapping of placeholder names to values"),
        ({"objectives": [{"sli": ""}]}, "objectives[0].sli",
         "missing: the name of an indicator in sli.yaml"),
        ({"objectives": [{"sli": "a", "weight": -1}]}, "objectives[0].weight",
         "expected a whole number, got -1"),
        ({"comparison": {"number_of_comparison_results": True}},
         "comparison.number_of_comparison_results", "expected a whole number >= 1, got True"),
        ({"objectives": [{"sli": "a", "pass": [5]}]}, "objectives[0].pass[0].criteria",
         "expected a list of criteria strings such as '<600'"),
        ({"objectives": [{"sli": "a", "warning": {"x": 1}}]}, "objectives[0].warning",
         "expected a list of {criteria: [...]}"),
        ({"total_score": {"pass": "90%", "warning": "lots"}}, "total_score.warning",
         "expected a percentage such as '90%', got 'lots'"),
    ],
)  # fmt: skip
def test_unusable_slo_files_name_the_path(document: Any, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        objectives.parse(document, "slo.yaml")
    assert (caught.value.file, caught.value.path, caught.value.message) == (
        "slo.yaml",
        path,
        message,
    )


def test_unparsable_criteria_are_reported_but_do_not_stop_loading() -> None:
    document = {
        "objectives": [{"sli": "a", "pass": [{"criteria": ["<5", "about 3"]}]}],
        "total_score": {"pass": "90%"},
    }
    slo, problems = objectives.parse(document, "slo.yaml")
    assert [(p.file, p.path, p.message) for p in problems] == [
        (
            "slo.yaml",
            "objectives[0].pass[0].criteria[1]",
            "invalid criteria string: expected e.g. '<600' or '<=+10%'",
        )
    ]
    assert slo.objectives[0].pass_criteria[0][1].error is not None


def test_the_file_header_filter_and_optional_thresholds_are_kept_as_written() -> None:
    slo, _ = objectives.parse(
        {
            "spec_version": "0.1.1",
            "filter": {"handler": None, "id": 7},
            "objectives": [{"sli": "a", "weight": 0}],
            "total_score": {"pass": "90%", "warning": ""},
        },
        "slo.yaml",
    )
    assert (slo.spec_version, slo.filter, slo.total_warning) == (
        "0.1.1",
        {"handler": "", "id": "7"},
        None,
    )
    assert slo.objectives[0].weight == 1
