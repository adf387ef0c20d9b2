"""slo.yaml (spec_version 1.0 and 0.1.x) as values, with Keptn's defaults.

Defaults, exactly as Keptn's lighthouse applied them: no `comparison` at all means
single_result / all / 1 / avg; a `comparison` with fields left out gets include `all`,
3 comparison results and `avg`; an objective's weight 0 or missing is 1.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any

from receiver import yamlfile
from receiver.errors import ConfigError
from receiver.slo import criteria


class Include(enum.Enum):
    """Which previous evaluations relative criteria compare with, by their overall result."""

    PASS = "pass"  # noqa: S105 - a result name, not a password
    PASS_OR_WARN = "pass_or_warn"  # noqa: S105
    ALL = "all"

    def admits(self, result: str) -> bool:
        result = result.lower()
        if self is Include.PASS:
            return result == "pass"
        if self is Include.PASS_OR_WARN:
            return result in ("pass", "warning")
        return True


AGGREGATES = ("avg", "p50", "p90", "p95")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Comparison:
    compare_with: str = "single_result"
    include_result_with_score: Include = Include.ALL
    number_of_comparison_results: int = 1
    aggregate_function: str = "avg"

    @property
    def previous_count(self) -> int:
        """How many previous evaluations to compare with (Keptn: 3 unless told otherwise)."""
        if self.compare_with == "single_result":
            return 1
        if self.compare_with == "several_results":
            return self.number_of_comparison_results
        return 3


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Objective:
    sli: str
    display_name: str
    key_sli: bool
    weight: int
    pass_criteria: tuple[tuple[criteria.Criterion, ...], ...]  # OR across, AND within
    warning_criteria: tuple[tuple[criteria.Criterion, ...], ...]

    @property
    def scored(self) -> bool:
        """Only objectives with pass criteria count towards the total score."""
        return bool(self.pass_criteria)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Slo:
    spec_version: str
    filter: dict[str, str]
    comparison: Comparison
    objectives: tuple[Objective, ...]
    total_pass: float | None  # percent
    total_warning: float | None


def load(file: Path) -> tuple[Slo, list[ConfigError]]:
    """The SLO in `file`; raises ConfigError if it cannot be used at all.

    The list holds problems that do not stop an evaluation but that `receiver check`
    reports: criteria Keptn could not parse (they never hold).
    """
    return parse(yamlfile.read(file), str(file))


def parse(document: Any, file: str) -> tuple[Slo, list[ConfigError]]:
    if not isinstance(document, dict):
        raise ConfigError(file, "", "expected a mapping with objectives")
    # Keptn wrote an empty spec_version into the files it generated (its issue 6096 test).
    spec_version = str(document.get("spec_version") or "1.0")
    if spec_version != "1.0" and not spec_version.startswith("0.1"):
        raise ConfigError(file, "spec_version", f"expected '1.0' or '0.1.x', got {spec_version!r}")
    raw_filter = document.get("filter")
    raw_filter = {} if raw_filter is None else raw_filter
    if not isinstance(raw_filter, dict):
        raise ConfigError(file, "filter", "expected a mapping of placeholder names to values")
    soft: list[ConfigError] = []
    objectives_doc = document.get("objectives")
    objectives_doc = [] if objectives_doc is None else objectives_doc
    if not isinstance(objectives_doc, list):
        raise ConfigError(file, "objectives", "expected a list")
    objectives = tuple(
        _objective(item, file, f"objectives[{index}]", soft)
        for index, item in enumerate(objectives_doc)
        if item is not None  # `- null`, an empty entry: Keptn's parser dropped it
    )
    total = document.get("total_score")
    total = {} if total is None else total
    if not isinstance(total, dict):
        raise ConfigError(file, "total_score", "expected a mapping with pass and warning")
    total_pass = _percent(total.get("pass"), file, "total_score.pass")
    if total_pass is None and any(o.scored for o in objectives):
        raise ConfigError(file, "total_score.pass", "missing: no target score defined")
    slo = Slo(
        spec_version=spec_version,
        filter={str(k): "" if v is None else str(v) for k, v in raw_filter.items()},
        comparison=_comparison(document.get("comparison"), file),
        objectives=objectives,
        total_pass=total_pass,
        total_warning=_percent(total.get("warning"), file, "total_score.warning"),
    )
    return slo, soft


def _comparison(doc: Any, file: str) -> Comparison:
    if doc is None:
        return Comparison()
    if not isinstance(doc, dict):
        raise ConfigError(file, "comparison", "expected a mapping")
    compare_with = doc.get("compare_with") or ""
    if compare_with not in ("", "single_result", "several_results"):
        raise ConfigError(
            file,
            "comparison.compare_with",
            f"expected single_result or several_results, got {compare_with!r}",
        )
    include = doc.get("include_result_with_score") or "all"
    try:
        include_value = Include(str(include).lower())
    except ValueError:
        raise ConfigError(
            file,
            "comparison.include_result_with_score",
            f"expected pass, pass_or_warn or all, got {include!r}",
        ) from None
    count = doc.get("number_of_comparison_results") or 3
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(
            file,
            "comparison.number_of_comparison_results",
            f"expected a whole number >= 1, got {count!r}",
        )
    aggregate = doc.get("aggregate_function") or "avg"
    if aggregate not in AGGREGATES:
        raise ConfigError(
            file,
            "comparison.aggregate_function",
            f"expected one of {', '.join(AGGREGATES)}, got {aggregate!r}",
        )
    return Comparison(
        compare_with=compare_with,
        include_result_with_score=include_value,
        number_of_comparison_results=count,
        aggregate_function=aggregate,
    )


def _objective(doc: Any, file: str, path: str, soft: list[ConfigError]) -> Objective:
    if not isinstance(doc, dict):
        raise ConfigError(file, path, "expected a mapping with sli, pass, warning")
    sli = doc.get("sli")
    if not isinstance(sli, str) or not sli:
        raise ConfigError(file, f"{path}.sli", "missing: the name of an indicator in sli.yaml")
    weight = doc.get("weight") or 1
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
        raise ConfigError(file, f"{path}.weight", f"expected a whole number, got {weight!r}")
    key_sli = doc.get("key_sli", False)
    if not isinstance(key_sli, bool):
        raise ConfigError(file, f"{path}.key_sli", f"expected true or false, got {key_sli!r}")
    display_name = doc.get("displayName") or sli
    return Objective(
        sli=sli,
        display_name=str(display_name),
        key_sli=key_sli,
        weight=weight,
        pass_criteria=_criteria_lists(doc.get("pass"), file, f"{path}.pass", soft),
        warning_criteria=_criteria_lists(doc.get("warning"), file, f"{path}.warning", soft),
    )


def _criteria_lists(
    doc: Any, file: str, path: str, soft: list[ConfigError]
) -> tuple[tuple[criteria.Criterion, ...], ...]:
    if doc is None:
        return ()
    if not isinstance(doc, list):
        raise ConfigError(file, path, "expected a list of {criteria: [...]}")
    lists = []
    for index, item in enumerate(doc):
        where = f"{path}[{index}].criteria"
        texts = item.get("criteria") if isinstance(item, dict) else None
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ConfigError(file, where, "expected a list of criteria strings such as '<600'")
        parsed = tuple(criteria.parse(text) for text in texts)
        soft.extend(
            ConfigError(file, f"{where}[{i}]", c.error)
            for i, c in enumerate(parsed)
            if c.error is not None
        )
        lists.append(parsed)
    return tuple(lists)


def _percent(value: Any, file: str, path: str) -> float | None:
    if value is None or value == "":
        return None
    text = str(value).strip().removesuffix("%")
    try:
        return float(text)
    except ValueError:
        raise ConfigError(
            file, path, f"expected a percentage such as '90%', got {value!r}"
        ) from None
