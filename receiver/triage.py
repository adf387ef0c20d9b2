"""What a notification should start, decided before it is recorded: a remediation with the
rule that matched, or nothing and the reason why.

Keptn did nothing, silently, when a problem named no service, the service had no
remediation.yaml, the file was broken or no rule matched. Here a broken file never gets this
far (the configuration is refused whole when it is loaded), and every other reason is
recorded on the problem and shown by the API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from receiver.models import Notification, Signal, Source
from receiver.remediation.model import Decision, Plan
from receiver.rules import remediation
from receiver.settings import Settings

NOTHING = Decision()


class Rules:
    """Every remediation.yaml of the configuration, with the plan of each of its rules, made
    once when it is loaded: deciding is then dictionary lookups and Keptn's prefix match, no
    file path built and no plan copied per notification (a storm decides thousands a
    second)."""

    def __init__(self, root: Path, rule_sets: Mapping[Path, remediation.RuleSet]) -> None:
        # (project, stage, service) or (project, stage) → the file's rules
        self._by_place: dict[tuple[str, ...], _File] = {}
        for file, rule_set in rule_sets.items():
            plans = {
                id(rule): rule.plan(rule_file=str(file))
                for rule in rule_set.rules
                if rule.error is None
            }
            place = file.relative_to(root).parts[:-1]
            self._by_place[place] = _File(str(file), rule_set, plans)

    def decide(self, notification: Notification, *, settings: Settings) -> Decision:
        if notification.signal is not Signal.OPEN:
            return NOTHING
        project, stage, service = notification.project, notification.stage, notification.service
        if not (project and stage and service):
            missing = [
                name for name in ("project", "stage", "service") if not getattr(notification, name)
            ]
            return Decision(
                reason=f"no {'/'.join(missing)}: {_where(notification, settings, missing)}"
            )
        found = self._by_place.get((project, stage, service)) or self._by_place.get(
            (project, stage)
        )
        if found is None:
            return Decision(reason=f"no remediation.yaml for {project}/{stage}/{service}")
        rule = found.rules.match(notification.title)
        if rule is None:
            return Decision(
                reason=f"no rule in {found.file} matches {notification.title!r} and there is"
                " no default rule"
            )
        if rule.error is not None:
            return Decision(
                reason=f"the matching rule {rule.problem_type!r} is broken: {rule.error}"
            )
        return Decision(plan=found.plans[id(rule)])


@dataclasses.dataclass(frozen=True, slots=True)
class _File:
    file: str
    rules: remediation.RuleSet
    plans: dict[int, Plan]  # by id() of the rule: the rules live as long as this


def _where(notification: Notification, settings: Settings, missing: list[str]) -> str:
    if notification.source is Source.ALERTMANAGER:
        names = {
            "project": settings.labels_project,
            "stage": settings.labels_stage,
            "service": settings.labels_service,
        }
        looked = "; ".join(f"{m} from {', '.join(names[m])}" for m in missing)
        return f"the alert has none of the labels ({looked})"
    looked = ", ".join(f"keptn_{m}" for m in missing)
    return f"the problem has no {looked} tag nor Keptn{missing[0].title()} field"
