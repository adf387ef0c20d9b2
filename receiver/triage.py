"""What a notification should start, decided before it is recorded: a remediation with the
rule that matched, or nothing and the reason why.

Keptn did nothing, silently, when a problem named no service, the service had no
remediation.yaml, the file was broken or no rule matched. Here the reason is recorded on
the problem and shown by the API.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from receiver import configtree, settings
from receiver.configtree import ConfigTree
from receiver.errors import ConfigError
from receiver.models import Notification, Signal, Source
from receiver.remediation.model import Decision, Plan
from receiver.rules import remediation
from receiver.settings import Settings
from receiver.slo import evaluation

NOTHING = Decision()


@dataclasses.dataclass(frozen=True, slots=True)
class Checked:
    """A configuration directory as `receiver check` and a reload see it."""

    settings: Settings | None  # None: receiver.yaml or the environment is wrong
    tree: ConfigTree | None  # None: the directory cannot be read
    errors: list[ConfigError]  # none: it may be put in force


def check_directory(root: Path) -> Checked:
    """The settings, the tree and every problem of both, from the files."""
    loaded, errors = settings.load_checked(root)
    try:
        tree = configtree.scan(root)
    except ConfigError as e:
        return Checked(loaded, None, [*errors, e])
    provider = loaded.sli_provider if loaded else "prometheus"
    errors = [
        *errors,
        *configtree.check(tree),
        *evaluation.check(tree, default_provider=provider),
        *remediation.check(tree),
    ]
    return Checked(loaded, tree, errors)


class Rules:
    """Every remediation.yaml of the tree, parsed once at start-up, with the plan of each of
    its rules: deciding is then dictionary lookups and Keptn's prefix match, no file path
    built and no plan copied per notification (a storm decides thousands a second)."""

    def __init__(self, tree: ConfigTree) -> None:
        self.tree = tree
        # (project, stage, service) or (project, stage) → the file's rules, or why not
        self._by_place: dict[tuple[str, ...], _File] = {}
        for file in tree.named(configtree.REMEDIATION):
            place = file.relative_to(tree.root).parts[:-1]
            try:
                rule_set = remediation.load(file)
            except ConfigError as e:
                self._by_place[place] = _File(str(file), None, e, {})
                continue
            plans = {
                id(rule): rule.plan(rule_file=str(file))
                for rule in rule_set.rules
                if rule.error is None
            }
            self._by_place[place] = _File(str(file), rule_set, None, plans)

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
        if found.rules is None:
            return Decision(reason=f"remediation.yaml cannot be used: {found.error}")
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
    rules: remediation.RuleSet | None
    error: ConfigError | None
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
