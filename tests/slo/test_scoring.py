"""Every scoring rule of the reference, one test each (Keptn lighthouse semantics)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from receiver.slo import objectives, scoring
from receiver.slo.scoring import Previous


def slo(
    objectives_yaml: str, *, comparison: str = "", total: str = "{pass: '90%', warning: '75%'}"
) -> objectives.Slo:
    text = f"{comparison}\nobjectives:\n{objectives_yaml}\ntotal_score: {total}\n"
    parsed, _ = objectives.parse(yaml.safe_load(text), "slo.yaml")
    return parsed


def evaluate(
    s: objectives.Slo, values: dict[str, Any], previous: list[Previous] | None = None
) -> scoring.Evaluation:
    return scoring.evaluate(s, values, previous or [])


def status(result: scoring.Evaluation) -> list[tuple[str, str, float]]:
    return [(o.sli, o.status, o.score) for o in result.objectives]


RT = """
- sli: rt
  pass: [{criteria: ["<600"]}]
  warning: [{criteria: ["<=800"]}]
"""


@pytest.mark.parametrize(
    ("value", "expected", "score", "result"),
    [
        (500, "pass", 1.0, "pass"),
        (700, "warning", 0.5, "fail"),
        (900, "fail", 0.0, "fail"),
        (600, "warning", 0.5, "fail"),
        (800, "warning", 0.5, "fail"),
    ],
)
def test_pass_warning_and_fail_score_weight_half_and_zero(
    value: float, expected: str, score: float, result: str
) -> None:
    evaluation = evaluate(slo(RT), {"rt": value})
    assert status(evaluation) == [("rt", expected, score)]
    assert evaluation.result == result


def test_criteria_within_a_list_all_hold_and_any_list_suffices() -> None:
    s = slo("""
- sli: rt
  pass:
  - criteria: [">100", "<200"]
  - criteria: ["=500"]
""")
    assert status(evaluate(s, {"rt": 150})) == [("rt", "pass", 1.0)]
    assert status(evaluate(s, {"rt": 500})) == [("rt", "pass", 1.0)]
    assert status(evaluate(s, {"rt": 250})) == [("rt", "fail", 0.0)]
    assert status(evaluate(s, {"rt": 50})) == [("rt", "fail", 0.0)]


def test_an_objective_without_pass_criteria_is_info_and_not_scored() -> None:
    s = slo(RT + "- sli: throughput\n  weight: 5\n")
    evaluation = evaluate(s, {"rt": 500, "throughput": 3})
    assert status(evaluation) == [("rt", "pass", 1.0), ("throughput", "info", 0.0)]
    assert evaluation.score == 100.0


def test_thresholds_decide_pass_warning_fail() -> None:
    s = slo(
        """
- sli: a
  weight: 3
  pass: [{criteria: ["<10"]}]
- sli: b
  pass: [{criteria: ["<10"]}]
  warning: [{criteria: ["<20"]}]
""",
        total="{pass: '90%', warning: '70%'}",
    )
    assert evaluate(s, {"a": 1, "b": 5}).result == "pass"  # 100
    warning = evaluate(s, {"a": 1, "b": 15})  # (3 + 0.5) / 4 = 87.5
    assert (warning.score, warning.result) == (87.5, "warning")
    failing = evaluate(s, {"a": 11, "b": 5})  # 1 / 4 = 25
    assert (failing.score, failing.result) == (25.0, "fail")


def test_the_pass_threshold_is_inclusive() -> None:
    s = slo(
        "- sli: a\n  pass: [{criteria: ['<10']}]\n- sli: b\n  pass: [{criteria: ['<10']}]\n",
        total="{pass: '50%'}",
    )
    assert evaluate(s, {"a": 1, "b": 20}).result == "pass"


def test_without_a_warning_threshold_below_pass_is_fail() -> None:
    s = slo(RT, total="{pass: '90%'}")
    assert evaluate(s, {"rt": 700}).result == "fail"


def test_no_scored_objective_passes_with_100() -> None:
    evaluation = evaluate(slo("- sli: info_only\n", total="{}"), {"info_only": 1})
    assert (evaluation.result, evaluation.score) == ("pass", 100.0)
    empty = evaluate(slo("  []", total="{}"), {})
    assert (empty.result, empty.score) == ("pass", 100.0)


def test_a_failed_key_sli_fails_the_evaluation_whatever_the_score() -> None:
    objectives_yaml = RT.replace("- sli: rt", "- sli: rt\n  key_sli: true")
    objectives_yaml += "".join(f"- sli: s{i}\n  pass: [{{criteria: ['<1']}}]\n" for i in range(20))
    values = {"rt": 900} | {f"s{i}": 0 for i in range(20)}
    evaluation = evaluate(slo(objectives_yaml), values)
    assert evaluation.score == pytest.approx(100 * 20 / 21)
    assert evaluation.key_sli_failed
    assert evaluation.result == "fail"


def test_a_key_sli_at_warning_does_not_fail_the_evaluation() -> None:
    s = slo(
        RT.replace("- sli: rt", "- sli: rt\n  key_sli: true"), total="{pass: '90%', warning: '50%'}"
    )
    evaluation = evaluate(s, {"rt": 700})
    assert (evaluation.result, evaluation.key_sli_failed) == ("warning", False)


def test_an_sli_without_a_value_fails_its_objective_and_counts() -> None:
    s = slo(RT + "- sli: err\n  pass: [{criteria: ['<0.05']}]\n", total="{pass: '50%'}")
    evaluation = evaluate(s, {"rt": 500, "err": None})
    assert status(evaluation) == [("rt", "pass", 1.0), ("err", "fail", 0.0)]
    assert evaluation.score == 50.0
    assert evaluation.objectives[1].value is None
    assert evaluation.objectives[1].message == "no value received from SLI provider"
    assert evaluation.result == "pass"  # 50% meets the 50% pass threshold


def test_a_missing_sli_is_no_value_too() -> None:
    evaluation = evaluate(slo(RT), {})
    assert status(evaluation) == [("rt", "fail", 0.0)]
    assert all(t.violated for t in evaluation.objectives[0].targets)


def test_nan_is_no_value() -> None:
    assert status(evaluate(slo(RT), {"rt": float("nan")})) == [("rt", "fail", 0.0)]


def test_a_key_sli_without_value_fails_the_evaluation() -> None:
    s = slo(
        RT.replace("- sli: rt", "- sli: rt\n  key_sli: true") + "- sli: b\n  weight: 9\n"
        "  pass: [{criteria: ['<1']}]\n",
        total="{pass: '50%'}",
    )
    evaluation = evaluate(s, {"rt": None, "b": 0})
    assert evaluation.score == 90.0
    assert evaluation.result == "fail"


def test_an_unparsable_criterion_is_violated() -> None:
    s = slo("- sli: a\n  pass: [{criteria: ['about 5']}]\n")
    evaluation = evaluate(s, {"a": 5})
    assert status(evaluation) == [("a", "fail", 0.0)]
    assert evaluation.objectives[0].targets[0].violated


# -- relative criteria -------------------------------------------------------------------------

RELATIVE = """
- sli: rt
  pass: [{criteria: ["<=+10%", "<600"]}]
  warning: [{criteria: ["<=800"]}]
"""


def test_a_relative_criterion_passes_without_history() -> None:
    evaluation = evaluate(slo(RELATIVE), {"rt": 500})
    assert status(evaluation) == [("rt", "pass", 1.0)]
    relative = evaluation.objectives[0].targets[1]  # after the warning list's target
    assert (relative.criteria, relative.target, relative.violated) == ("<=+10%", None, False)


def test_relative_percentage_compares_with_the_previous_value() -> None:
    previous = [Previous(result="pass", values={"rt": 400})]
    assert status(evaluate(slo(RELATIVE), {"rt": 440}, previous)) == [("rt", "pass", 1.0)]
    worse = evaluate(slo(RELATIVE), {"rt": 441}, previous)
    assert status(worse) == [("rt", "warning", 0.5)]
    # Keptn's order of targets: the warning list's, then the pass lists'.
    assert [(t.criteria, t.target, t.violated) for t in worse.objectives[0].targets] == [
        ("<=800", 800, False),
        ("<=+10%", pytest.approx(440), True),
        ("<600", 600, False),
    ]


@pytest.mark.parametrize(
    ("criterion", "value", "holds"),
    [
        ("<=-10%", 360, True),
        ("<=-10%", 361, False),
        ("<+50", 449, True),
        ("<+50", 450, False),
        ("<=-50", 350, True),
        ("<=-50", 351, False),
        (">=10%", 440, True),
        (">=10%", 439, False),
        ("<=10%", 440, True),
    ],
)
def test_relative_deltas_and_percentages(criterion: str, value: float, holds: bool) -> None:
    s = slo(f"- sli: rt\n  pass: [{{criteria: ['{criterion}']}}]\n")
    previous = [Previous(result="pass", values={"rt": 400})]
    assert (evaluate(s, {"rt": value}, previous).objectives[0].status == "pass") is holds


def comparison(
    compare_with: str = "several_results",
    include: str = "all",
    count: int = 3,
    aggregate: str = "avg",
) -> str:
    return (
        f"comparison: {{compare_with: {compare_with}, include_result_with_score: {include},"
        f" number_of_comparison_results: {count}, aggregate_function: {aggregate}}}"
    )


def target_of(s: objectives.Slo, previous: list[Previous]) -> float | None:
    return evaluate(s, {"rt": 1}, previous).objectives[0].targets[0].target


DELTA_ZERO = "- sli: rt\n  pass: [{criteria: ['<=+0']}]\n"


def test_history_is_filtered_by_result_first_then_the_newest_n_are_taken() -> None:
    history = [  # newest first
        Previous(result="fail", values={"rt": 1000}),
        Previous(result="pass", values={"rt": 100}),
        Previous(result="warning", values={"rt": 300}),
        Previous(result="pass", values={"rt": 200}),
        Previous(result="pass", values={"rt": 900}),
    ]
    only_pass = slo(DELTA_ZERO, comparison=comparison(include="pass", count=2))
    assert target_of(only_pass, history) == 150  # avg(100, 200): filter, then take 2
    pass_or_warn = slo(DELTA_ZERO, comparison=comparison(include="pass_or_warn", count=2))
    assert target_of(pass_or_warn, history) == 200  # avg(100, 300)
    everything = slo(DELTA_ZERO, comparison=comparison(include="all", count=2))
    assert target_of(everything, history) == 550  # avg(1000, 100)


def test_single_result_compares_with_the_newest_admitted_evaluation() -> None:
    history = [
        Previous(result="fail", values={"rt": 1000}),
        Previous(result="pass", values={"rt": 100}),
    ]
    s = slo(DELTA_ZERO, comparison=comparison("single_result", include="pass", count=5))
    assert target_of(s, history) == 100


def test_default_comparison_is_the_single_newest_result_of_any_kind() -> None:
    history = [
        Previous(result="fail", values={"rt": 1000}),
        Previous(result="pass", values={"rt": 100}),
    ]
    assert target_of(slo(DELTA_ZERO), history) == 1000


def test_previous_evaluations_without_a_value_for_the_sli_are_skipped() -> None:
    history = [
        Previous(result="pass", values={"rt": None}),
        Previous(result="pass", values={}),
        Previous(result="pass", values={"rt": 300}),
    ]
    assert target_of(slo(DELTA_ZERO, comparison=comparison()), history) == 300
    nothing = [Previous(result="pass", values={"rt": None})]
    assert target_of(slo(DELTA_ZERO, comparison=comparison()), nothing) is None


@pytest.mark.parametrize(
    ("aggregate", "values", "expected"),
    [
        ("p50", [1, 2, 3, 4], 2.5),  # rank 0.5·5 = 2.5 → between 2 and 3
        ("p90", [1, 2, 3, 4], 4),  # rank 4.5 ≥ n → the largest
        (
            "p95",
            [
                10,
                20,
                30,
                40,
                50,
                60,
                70,
                80,
                90,
                100,
                110,
                120,
                130,
                140,
                150,
                160,
                170,
                180,
                190,
                200,
            ],
            199.5,
        ),  # rank 19.95 → 190 + 0.95·10
        ("p50", [5], 5),  # rank 1 → the only value
        ("p90", [3, 1, 2], 3),  # unsorted input; rank 3.6 ≥ n → largest
        ("p50", [3, 1], 2),  # rank 1.5 → 1 + 0.5·(3 - 1)
        ("avg", [1, 2, 6], 3),
    ],
)
def test_aggregates_use_keptns_percentile(
    aggregate: str, values: list[float], expected: float
) -> None:
    assert scoring.aggregate_values(values, aggregate) == pytest.approx(expected)


def test_percentile_clamps_low_ranks_to_the_smallest_value() -> None:
    assert scoring.percentile([7, 9, 8], 0.2) == 7  # rank 0.8 < 1


def test_an_aggregate_is_used_for_the_relative_target() -> None:
    history = [Previous(result="pass", values={"rt": v}) for v in (100, 400, 200, 300)]
    s = slo(DELTA_ZERO, comparison=comparison(count=4, aggregate="p50"))
    assert target_of(s, history) == 250


def test_the_json_form_has_the_documented_fields() -> None:
    document = evaluate(slo(RT), {"rt": 500}).to_json()
    assert document == {
        "result": "pass",
        "score": 100.0,
        "objectives": [
            {
                "sli": "rt",
                "value": 500,
                "status": "pass",
                "score": 1.0,
                "weight": 1,
                "key_sli": False,
                "targets": [
                    {"criteria": "<=800", "target": 800, "violated": False},
                    {"criteria": "<600", "target": 600, "violated": False},
                ],
            }
        ],
    }


def test_p90_of_ten_values_interpolates_at_rank_nine_point_nine() -> None:
    assert scoring.aggregate_values([float(v) for v in range(1, 11)], "p90") == pytest.approx(9.9)


def test_a_warning_of_a_weighted_objective_scores_half_its_weight() -> None:
    weighted = slo(
        "- sli: rt\n  weight: 2\n  pass: [{criteria: ['<600']}]\n"
        "  warning: [{criteria: ['<=800']}]\n"
        "- sli: err\n  pass: [{criteria: ['<1']}]\n"
    )
    result = evaluate(weighted, {"rt": 700, "err": 0})
    assert status(result) == [("rt", "warning", 1.0), ("err", "pass", 1.0)]
    assert result.score == pytest.approx(100 * 2 / 3)


def test_an_objective_result_carries_its_names_and_a_message_only_without_value() -> None:
    s = slo(RT + "- sli: err\n  displayName: Error rate\n  pass: [{criteria: ['<1']}]\n")
    result = scoring.evaluate(
        s, {"rt": 300}, [], reasons={"err": "Prometheus answered 400: bad query"}
    )
    rt, err = result.objectives
    assert (rt.display_name, rt.message) == ("rt", None)
    assert (err.display_name, err.value, err.message) == (
        "Error rate",
        None,
        "Prometheus answered 400: bad query",
    )


@pytest.mark.parametrize("value", ["412", True, None, float("nan")])
def test_what_is_not_a_number_is_no_value(value: Any) -> None:
    result = evaluate(slo(RT), {"rt": value})
    (objective,) = result.objectives
    assert (objective.value, objective.status) == (None, "fail")


def test_history_values_that_are_not_numbers_are_skipped() -> None:
    history = [
        Previous(result="pass", values={"rt": "fast"}),  # type: ignore[dict-item]
        Previous(result="pass", values={"rt": 100.0}),
    ]
    s = slo(DELTA_ZERO, comparison=comparison(count=2, aggregate="avg"))
    assert target_of(s, history) == 100


def test_only_informational_objectives_pass_with_their_results_listed() -> None:
    info = slo("- sli: rt\n- sli: err\n  key_sli: true\n")
    result = evaluate(info, {"rt": 300, "err": 5})
    assert (result.result, result.score, result.key_sli_failed) == ("pass", 100.0, False)
    assert status(result) == [("rt", "info", 0.0), ("err", "info", 0.0)]
