"""Score SLI values against an SLO, exactly as Keptn's lighthouse did. Pure: no I/O.

- An objective passes when any of its pass lists holds in full (OR across lists, AND within
  one): score = weight. Else, when any warning list holds: 0.5·weight, "warning". Else 0,
  "fail". Without pass lists it is "info" and not scored.
- An SLI without a value fails its objective (Keptn 0.7 dropped it silently, a defect).
- A failed key SLI fails the whole evaluation.
- Total = 100·Σscore / Σweight of scored objectives: pass at ≥ total_score.pass, else warning
  at ≥ total_score.warning, else fail. No scored objective: pass, 100.
- Relative criteria compare with the aggregate of this SLI's values in the previous
  evaluations: filtered by overall result (include_result_with_score), then the newest N.
  No previous value: a relative criterion holds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from receiver.slo import criteria
from receiver.slo.objectives import Objective, Slo


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Previous:
    """One earlier evaluation of the same service, as the history relative criteria use."""

    result: str  # pass | warning | fail
    values: Mapping[str, float | None]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    criteria: str
    target: float | None  # None: relative, with nothing to compare with
    violated: bool


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ObjectiveResult:
    sli: str
    display_name: str
    value: float | None
    status: str  # pass | warning | fail | info
    score: float
    weight: int
    key_sli: bool
    targets: tuple[Target, ...]
    message: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Evaluation:
    result: str  # pass | warning | fail
    score: float
    objectives: tuple[ObjectiveResult, ...]
    key_sli_failed: bool

    def values(self) -> dict[str, float | None]:
        return {o.sli: o.value for o in self.objectives}

    def to_json(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "score": self.score,
            "objectives": [
                {
                    "sli": o.sli,
                    "value": o.value,
                    "status": o.status,
                    "score": o.score,
                    "weight": o.weight,
                    "key_sli": o.key_sli,
                    "targets": [
                        {"criteria": t.criteria, "target": t.target, "violated": t.violated}
                        for t in o.targets
                    ],
                }
                for o in self.objectives
            ],
        }


def evaluate(
    slo: Slo,
    values: Mapping[str, float | None],
    previous: Sequence[Previous] = (),
    *,
    reasons: Mapping[str, str] | None = None,
) -> Evaluation:
    """Score `values` (None: the SLI could not be retrieved); `previous` is newest first.

    `reasons` says why an SLI has no value; it becomes the objective's message.
    """
    comparison = slo.comparison
    history = [p for p in previous if comparison.include_result_with_score.admits(p.result)][
        : comparison.previous_count
    ]
    results = tuple(
        _objective(
            objective,
            _value(values, objective.sli),
            history,
            comparison.aggregate_function,
            reason=(reasons or {}).get(objective.sli),
        )
        for objective in slo.objectives
    )
    key_sli_failed = any(r.key_sli and r.status == "fail" for r in results)
    maximum = sum(o.weight for o in slo.objectives if o.scored)
    if maximum == 0:
        return Evaluation(result="pass", score=100.0, objectives=results, key_sli_failed=False)
    score = 100.0 * sum(r.score for r in results) / maximum
    if slo.total_pass is None:  # objectives.parse refuses this; kept total for safety
        raise ValueError("no target score defined (total_score.pass)")
    if score >= slo.total_pass and not key_sli_failed:
        result = "pass"
    elif slo.total_warning is not None and not key_sli_failed and score >= slo.total_warning:
        result = "warning"
    else:
        result = "fail"
    return Evaluation(result=result, score=score, objectives=results, key_sli_failed=key_sli_failed)


def _objective(
    objective: Objective,
    value: float | None,
    history: list[Previous],
    aggregate_function: str,
    *,
    reason: str | None,
) -> ObjectiveResult:
    previous_values = [
        v for p in history if (v := p.values.get(objective.sli)) is not None and _number(v)
    ]
    aggregate = aggregate_values(previous_values, aggregate_function) if previous_values else None

    def check(lists: tuple[tuple[criteria.Criterion, ...], ...]) -> tuple[bool, list[Target]]:
        satisfied, targets = False, []
        for criteria_list in lists:  # every list is evaluated, to show every violation
            all_hold = True
            for criterion in criteria_list:
                holds = _holds(criterion, value, aggregate)
                all_hold = all_hold and holds
                targets.append(
                    Target(
                        criteria=criterion.text,
                        target=criterion.target(aggregate),
                        violated=not holds,
                    )
                )
            satisfied = satisfied or all_hold
        return satisfied, targets

    passed, pass_targets = check(objective.pass_criteria) if objective.scored else (True, [])
    # Shown whatever the status, as Keptn's lighthouse shows them (its TestEvaluateObjectives).
    warned, warning_targets = (
        check(objective.warning_criteria)
        if objective.scored and objective.warning_criteria
        else (False, [])
    )
    if value is None:
        status, score = "fail", 0.0
    elif not objective.scored:
        status, score = "info", 0.0
    elif passed:
        status, score = "pass", float(objective.weight)
    elif warned:
        status, score = "warning", 0.5 * objective.weight
    else:
        status, score = "fail", 0.0
    return ObjectiveResult(
        sli=objective.sli,
        display_name=objective.display_name,
        value=value,
        status=status,
        score=score,
        weight=objective.weight,
        key_sli=objective.key_sli,
        targets=tuple(warning_targets + pass_targets),  # Keptn's order: warning, then pass
        message=(reason or "no value received from SLI provider") if value is None else None,
    )


def _holds(criterion: criteria.Criterion, value: float | None, aggregate: float | None) -> bool:
    if value is None or criterion.error is not None:
        return False
    target = criterion.target(aggregate)
    if target is None:  # relative, and no previous value to compare with
        return True
    return criterion.holds(value, target)


def _value(values: Mapping[str, float | None], sli: str) -> float | None:
    """The SLI's value; NaN is no value (Keptn failed the SLI on NaN too)."""
    value = values.get(sli)
    if value is None or not _number(value) or math.isnan(value):
        return None
    return float(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def aggregate_values(values: Sequence[float], function: str) -> float:
    if function == "avg":
        return sum(values) / len(values)
    return percentile(values, {"p50": 0.5, "p90": 0.9, "p95": 0.95}[function])


def percentile(values: Sequence[float], p: float) -> float:
    """Keptn's percentile: rank p·(n+1), clamped to the ends, linear interpolation."""
    ordered = sorted(values)
    size = len(ordered)
    position = p * (size + 1)
    if position < 1.0:
        return ordered[0]
    if position >= size:
        return ordered[-1]
    lower, upper = ordered[int(position) - 1], ordered[int(position)]
    return lower + (position - math.floor(position)) * (upper - lower)
