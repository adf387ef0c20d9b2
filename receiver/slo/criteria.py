"""One criterion string of an objective, such as `<600`, `<=+10%` or `>-5`, as Keptn read it.

Keptn's rules, kept exactly: spaces anywhere are removed; the operator is one of `<=`, `<`,
`=`, `>=`, `>`; a `%` suffix makes the criterion relative (a percentage change, an increase
unless signed `-`); a `+` or `-` sign makes it relative too (an absolute delta). A string Keptn
could not parse is kept, with the reason, and is never satisfied.
"""

from __future__ import annotations

import dataclasses
import enum
import operator as op
import re
from collections.abc import Callable

# Keptn's own pattern, character classes and all, and like Keptn anchored only at the start.
_KEPTN_PATTERN = re.compile(r"^([<|<=|=|>|>=]{1,2})([+|-]{0,1}\d*\.?\d*)([%]{0,1})")
_OPERATORS = ("<=", "<", "=", ">=", ">")  # Keptn tried them in this order
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": op.lt,
    "<=": op.le,
    "=": op.eq,
    ">=": op.ge,
    ">": op.gt,
}
# What Go's strconv.ParseFloat accepts for the number part (it rejects Python's `1_000`).
_GO_FLOAT = re.compile(r"^(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf(inity)?|nan)$", re.I)


class Kind(enum.Enum):
    ABSOLUTE = "absolute"  # compare with the number itself
    DELTA = "delta"  # compare with aggregate ± number
    PERCENT = "percent"  # compare with aggregate · (100 ± number) / 100


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Criterion:
    text: str  # as written in slo.yaml
    operator: str = ""
    number: float = 0.0
    kind: Kind = Kind.ABSOLUTE
    increase: bool = True
    error: str | None = None  # why Keptn could not parse it; such a criterion never holds

    @property
    def relative(self) -> bool:
        return self.kind is not Kind.ABSOLUTE

    def target(self, aggregate: float | None) -> float | None:
        """The value to compare with; None for a relative criterion with nothing to compare."""
        if self.error is not None:
            return None
        if self.kind is Kind.ABSOLUTE:
            return self.number
        if aggregate is None:
            return None
        if self.kind is Kind.PERCENT:
            factor = 100.0 + self.number if self.increase else 100.0 - self.number
            return aggregate * factor / 100.0
        return aggregate + self.number if self.increase else aggregate - self.number

    def holds(self, value: float, target: float) -> bool:
        return _COMPARE[self.operator](value, target)


def parse(text: str) -> Criterion:
    compact = text.replace(" ", "")
    if not _KEPTN_PATTERN.match(compact):
        return Criterion(
            text=text, error="invalid criteria string: expected e.g. '<600' or '<=+10%'"
        )
    operator = next((o for o in _OPERATORS if compact.startswith(o)), "")
    rest = compact[len(operator) :]
    kind, increase = Kind.ABSOLUTE, True
    if rest.endswith("%"):
        kind, rest = Kind.PERCENT, rest[:-1]
    if rest.startswith("-"):
        kind, increase, rest = (kind if kind is Kind.PERCENT else Kind.DELTA), False, rest[1:]
    elif rest.startswith("+"):
        kind, rest = (kind if kind is Kind.PERCENT else Kind.DELTA), rest[1:]
    if not operator or not _GO_FLOAT.match(rest):
        return Criterion(text=text, error=f"could not parse the target value of {text!r}")
    return Criterion(text=text, operator=operator, number=float(rest), kind=kind, increase=increase)
