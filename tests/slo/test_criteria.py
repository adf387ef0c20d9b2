from __future__ import annotations

import pytest

from receiver.slo import criteria
from receiver.slo.criteria import Kind


@pytest.mark.parametrize(
    ("text", "operator", "number", "kind", "increase"),
    [
        ("<600", "<", 600, Kind.ABSOLUTE, True),
        ("<=800", "<=", 800, Kind.ABSOLUTE, True),
        ("=0", "=", 0, Kind.ABSOLUTE, True),
        (">=0.5", ">=", 0.5, Kind.ABSOLUTE, True),
        (">.5", ">", 0.5, Kind.ABSOLUTE, True),
        ("<+10", "<", 10, Kind.DELTA, True),
        ("<-5", "<", 5, Kind.DELTA, False),
        ("<=+10%", "<=", 10, Kind.PERCENT, True),
        ("<=-10%", "<=", 10, Kind.PERCENT, False),
        ("<=10%", "<=", 10, Kind.PERCENT, True),  # a bare percentage is an increase
        (" < = + 1 0 % ", "<=", 10, Kind.PERCENT, True),  # spaces anywhere
        ("<1e3", "<", 1000, Kind.ABSOLUTE, True),
    ],
)
def test_criteria_are_read_as_keptn_read_them(
    text: str, operator: str, number: float, kind: Kind, increase: bool
) -> None:
    parsed = criteria.parse(text)
    assert parsed.error is None
    assert (parsed.operator, parsed.number, parsed.kind, parsed.increase) == (
        operator,
        number,
        kind,
        increase,
    )


INVALID = "invalid criteria string: expected e.g. '<600' or '<=+10%'"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("600", INVALID),
        ("", INVALID),
        ("10%", INVALID),
        ("!=5", INVALID),
        ("<", "could not parse the target value of '<'"),
        ("<=abc", "could not parse the target value of '<=abc'"),
        ("=>5", "could not parse the target value of '=>5'"),
        ("<<5", "could not parse the target value of '<<5'"),
        ("<1_000", "could not parse the target value of '<1_000'"),
    ],
)
def test_unparsable_criteria_carry_the_reason(text: str, error: str) -> None:
    parsed = criteria.parse(text)
    assert (parsed.text, parsed.error) == (text, error)  # shown as written, with why
    assert parsed.target(100.0) is None


@pytest.mark.parametrize(
    ("text", "aggregate", "target"),
    [
        ("<600", None, 600),
        ("<600", 100, 600),
        ("<=+10%", 200, 220),
        ("<=-10%", 200, 180),
        ("<=10%", 200, 220),
        ("<+10", 200, 210),
        ("<-10", 200, 190),
        ("<+10", None, None),
    ],
)
def test_targets(text: str, aggregate: float | None, target: float | None) -> None:
    assert criteria.parse(text).target(aggregate) == pytest.approx(target)
