"""What a notification should start, decided before it is recorded: a remediation with the
rule that matched, or nothing and the reason why.

Keptn did nothing, silently, when a problem named no service, the service had no
remediation.yaml, the file was broken or no rule matched. Here the reason is recorded on
the problem and shown by the API.
"""

from __future__ import annotations

from pathlib import Path

from receiver import configtree
from receiver.configtree import ConfigTree
from receiver.errors import ConfigError
from receiver.models import Notification, Signal, Source
from receiver.remediation.model import Decision
from receiver.rules import remediation
from receiver.settings import Settings

NOTHING = Decision()


class Rules:
    """Every remediation.yaml of the tree, parsed once at start-up."""

    def __init__(self, tree: ConfigTree) -> None:
        self.tree = tree
        self._files: dict[Path, remediation.RuleSet | ConfigError] = {}
        for file in tree.named(configtree.REMEDIATION):
            try:
                self._files[file] = remediation.load(file)
            except ConfigError as e:
                self._files[file] = e

    def decide(self, notification: Notification, *, settings: Settings) -> Decision:
        if notification.signal is not Signal.OPEN:
            return NOTHING
        ref = notification.service_ref
        if ref is None:
            missing = [
                name for name in ("project", "stage", "service") if not getattr(notification, name)
            ]
            return Decision(
                reason=f"no {'/'.join(missing)}: {_where(notification, settings, missing)}"
            )
        file = self.tree.remediation_file(ref)
        if file is None:
            return Decision(reason=f"no remediation.yaml for {ref}")
        rules = self._files[file]
        if isinstance(rules, ConfigError):
            return Decision(reason=f"remediation.yaml cannot be used: {rules}")
        rule = rules.match(notification.title)
        if rule is None:
            return Decision(
                reason=f"no rule in {file} matches {notification.title!r} and there is no"
                " default rule"
            )
        if rule.error is not None:
            return Decision(
                reason=f"the matching rule {rule.problem_type!r} is broken: {rule.error}"
            )
        return Decision(plan=rule.plan(rule_file=str(file)))


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
