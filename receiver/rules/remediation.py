"""Load remediation.yaml in Keptn 0.6 and Keptn 0.7+ form into rules with typed actions.

    # Keptn 0.6
    remediations:
    - name: response_time_p90
      actions: [{action: scaling, value: +1}]

    # Keptn 0.7+ (apiVersion spec.keptn.sh/0.1.x)
    apiVersion: spec.keptn.sh/0.1.4
    kind: Remediation
    spec:
      remediations:
      - problemType: Failure rate increase
        actionsOnOpen:
        - {action: toggle-feature, name: ..., value: {EnablePromotion: "off"}}

Options beyond Keptn, per rule and all optional: `wait` (before the SLO is evaluated again),
`evaluation_window`, `dry_run`, `approval: manual` (a person approves before the first action;
default `automatic`) and `approval_timeout` (then it escalates).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from receiver import configtree, durations
from receiver.errors import ConfigError
from receiver.models import ActionKind, Custom, Escalate, Restart, Rollback, Scale, Toggle
from receiver.remediation.model import Plan, PlannedAction

DEFAULT_RULE = "default"
ACTIONS = ("scaling", "featuretoggle", "toggle-feature", "restart", "rollback", "escalate")
_API_VERSION = re.compile(r"^spec\.keptn\.sh/0\.1\.\d+$")
_DELTA = re.compile(r"^\s*[+-]?\d+\s*$")
_SWITCH = {"on": True, "off": False, "true": True, "false": False}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Action:
    name: str  # the action as written in remediation.yaml: scaling, toggle-feature, ...
    kind: ActionKind
    value: Any  # as written, for the timeline
    title: str | None = None  # Keptn 0.7's `name`
    description: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    problem_type: str
    actions: tuple[Action, ...]
    wait: float | None = None
    evaluation_window: float | None = None
    dry_run: bool = False
    manual_approval: bool = False
    approval_timeout: float | None = None
    error: str | None = None  # why this rule cannot run ("file: path: what is wrong")

    def plan(self, *, rule_file: str) -> Plan:
        """The rule as the journal keeps it, so a resumed remediation runs what was matched."""
        return Plan(
            rule=self.problem_type,
            actions=tuple(
                PlannedAction(
                    action=a.name, value=a.value, title=a.title, description=a.description
                )
                for a in self.actions
            ),
            wait=self.wait,
            evaluation_window=self.evaluation_window,
            dry_run=self.dry_run,
            rule_file=rule_file,
            manual_approval=self.manual_approval,
            approval_timeout=self.approval_timeout,
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RuleSet:
    file: str
    rules: tuple[Rule, ...]

    def match(self, title: str) -> Rule | None:
        """The first rule whose problem type starts the title, else `default`, else None.

        A rule with an error is matched like any other, so that its error is what the
        problem shows, instead of a different rule running in its place.
        """
        for rule in self.rules:
            if rule.problem_type != DEFAULT_RULE and title.startswith(rule.problem_type):
                return rule
        return next((r for r in self.rules if r.problem_type == DEFAULT_RULE), None)


def load_all(tree: configtree.ConfigTree) -> tuple[dict[Path, RuleSet], list[ConfigError]]:
    """The rules of every remediation.yaml of the tree that could be read, and every problem
    with them (a file that cannot be read at all is configtree.check's to report)."""
    rule_sets: dict[Path, RuleSet] = {}
    errors: list[ConfigError] = []
    for file in tree.named(configtree.REMEDIATION):
        try:
            document = tree.document(file)
        except ConfigError:
            continue
        rule_sets[file], found = parse(document, str(file))
        errors.extend(found)
    return rule_sets, errors


def action(name: str, value: Any) -> ActionKind:
    """The typed action of a journaled plan entry (validated when the rule was matched)."""
    return _kind(name, value)


def parse(document: Any, file: str) -> tuple[RuleSet, list[ConfigError]]:
    """Rules and every problem found; a rule with a problem is left out."""
    errors: list[ConfigError] = []
    if not isinstance(document, dict):
        return RuleSet(file=file, rules=()), [ConfigError(file, "", "expected a mapping")]
    if "apiVersion" in document or "spec" in document:
        api_version = document.get("apiVersion")
        if not isinstance(api_version, str) or not _API_VERSION.match(api_version):
            errors.append(
                ConfigError(
                    file, "apiVersion", f"expected spec.keptn.sh/0.1.x, got {api_version!r}"
                )
            )
        kind = document.get("kind", "Remediation")
        if kind != "Remediation":
            errors.append(ConfigError(file, "kind", f"expected Remediation, got {kind!r}"))
        spec = document.get("spec")
        if not isinstance(spec, dict):
            errors.append(ConfigError(file, "spec", "expected a mapping with remediations"))
            return RuleSet(file=file, rules=()), errors
        entries, path, name_key, actions_key = (
            spec.get("remediations"),
            "spec.remediations",
            "problemType",
            "actionsOnOpen",
        )
    elif "remediations" in document:
        entries, path, name_key, actions_key = (
            document["remediations"],
            "remediations",
            "name",
            "actions",
        )
    else:
        return RuleSet(file=file, rules=()), [
            ConfigError(
                file, "", "expected Keptn 0.6 `remediations:` or Keptn 0.7 `apiVersion:`/`spec:`"
            )
        ]
    if not isinstance(entries, list):
        errors.append(ConfigError(file, path, "expected a list of remediations"))
        return RuleSet(file=file, rules=()), errors
    file_error = str(errors[0]) if errors else None  # a wrong apiVersion breaks every rule
    rules = []
    for index, entry in enumerate(entries):
        where = f"{path}[{index}]"
        before = len(errors)
        rule = _rule(entry, file, where, name_key, actions_key, errors)
        if rule is None:
            continue
        error = file_error or (str(errors[before]) if len(errors) > before else None)
        rules.append(dataclasses.replace(rule, error=error) if error else rule)
    return RuleSet(file=file, rules=tuple(rules)), errors


def _rule(
    entry: Any, file: str, where: str, name_key: str, actions_key: str, errors: list[ConfigError]
) -> Rule | None:
    if not isinstance(entry, dict):
        errors.append(ConfigError(file, where, f"expected a mapping with {name_key}"))
        return None
    problem_type = entry.get(name_key)
    if not isinstance(problem_type, str) or not problem_type:
        errors.append(ConfigError(file, f"{where}.{name_key}", "missing: the problem title prefix"))
        return None
    raw_actions = entry.get(actions_key)
    if not isinstance(raw_actions, list) or not raw_actions:
        errors.append(ConfigError(file, f"{where}.{actions_key}", "expected a list of actions"))
        return None
    actions = []
    for index, raw in enumerate(raw_actions):
        action = _action(raw, file, f"{where}.{actions_key}[{index}]", errors)
        if action is not None:
            actions.append(action)
    options: dict[str, Any] = {}
    for key in ("wait", "evaluation_window", "approval_timeout"):
        if entry.get(key) is not None:
            try:
                options[key] = durations.parse(entry[key])
            except ValueError as e:
                errors.append(ConfigError(file, f"{where}.{key}", str(e)))
    if "dry_run" in entry:
        if not isinstance(entry["dry_run"], bool):
            errors.append(ConfigError(file, f"{where}.dry_run", "expected true or false"))
        options["dry_run"] = bool(entry["dry_run"])
    approval = entry.get("approval", "automatic")
    if approval not in ("automatic", "manual"):
        errors.append(
            ConfigError(
                file, f"{where}.approval", f"expected automatic or manual, got {approval!r}"
            )
        )
    options["manual_approval"] = approval == "manual"
    return Rule(problem_type=problem_type, actions=tuple(actions), **options)


def _action(raw: Any, file: str, where: str, errors: list[ConfigError]) -> Action | None:
    if not isinstance(raw, dict):
        errors.append(ConfigError(file, where, "expected a mapping with action and value"))
        return None
    name = raw.get("action")
    if not isinstance(name, str) or not name.strip():
        errors.append(
            ConfigError(file, f"{where}.action", f"expected an action name, got {name!r}")
        )
        return None
    value = raw.get("value")
    try:
        kind = _kind(name, value)
    except ValueError as e:
        errors.append(ConfigError(file, f"{where}.value", str(e)))
        return None
    return Action(
        name=name,
        kind=kind,
        value=value,
        title=str(raw["name"]) if raw.get("name") is not None else None,
        description=str(raw["description"]) if raw.get("description") is not None else None,
    )


def _kind(name: str, value: Any) -> ActionKind:
    if name == "scaling":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and _DELTA.match(value))
        ):
            raise ValueError(f"expected a replica delta such as +1, 1 or -1, got {value!r}")
        return Scale(delta=int(value))
    if name in ("featuretoggle", "toggle-feature"):
        return Toggle(flags=_flags(value))
    if name == "restart":
        return Restart()
    if name == "rollback":
        return Rollback()
    if name == "escalate":
        return Escalate()
    return Custom(name=name, value=value)  # Keptn >= 0.7: whoever subscribed to the name


def _flags(value: Any) -> tuple[tuple[str, bool], ...]:
    """`Name:on|off`, or a map of names to on/off (YAML 1.1 turns a bare off into false)."""
    if isinstance(value, str):
        items: list[tuple[Any, Any]] = []
        for part in value.split(","):
            flag, sep, state = part.strip().partition(":")
            if not sep:
                raise ValueError(f'expected "Name:on|off", got {value!r}')
            items.append((flag.strip(), state.strip()))
    elif isinstance(value, dict) and value:
        items = list(value.items())
    else:
        raise ValueError(f'expected "Name:on|off" or a map {{Name: "on"|"off"}}, got {value!r}')
    flags = []
    for flag, state in items:
        switch = state if isinstance(state, bool) else _SWITCH.get(str(state).strip().lower())
        if not isinstance(flag, str) or not flag or switch is None:
            raise ValueError(f"expected a flag name and on or off, got {flag!r}: {state!r}")
        flags.append((flag, switch))
    return tuple(flags)


def warnings(
    tree: configtree.ConfigTree, *, webhooks: frozenset[str] = frozenset()
) -> list[ConfigError]:
    """Actions the receiver does not run (neither its own nor one of the `webhooks` mapped
    in receiver.yaml): their rules load, and a remediation reaching one records that it has
    no executor for it and moves on to the next action."""
    found: list[ConfigError] = []
    for file in tree.named(configtree.REMEDIATION):
        try:
            document = tree.document(file)
        except ConfigError:
            continue  # configtree.check reports it
        for path, name in _action_names(document):
            if name not in ACTIONS and name not in webhooks:
                found.append(
                    ConfigError(
                        str(file),
                        path,
                        f"{name!r} is not an action the receiver runs ({', '.join(ACTIONS)}),"
                        " nor one mapped under actions.webhooks in receiver.yaml: a"
                        " remediation reaching it records that it has no executor for it"
                        " and moves on",
                    )
                )
    return found


def _action_names(document: Any) -> list[tuple[str, str]]:
    """(path, name) of every action named in a remediation.yaml of either format."""
    if not isinstance(document, dict):
        return []
    spec = document.get("spec")
    if isinstance(spec, dict):
        entries, path, key = spec.get("remediations"), "spec.remediations", "actionsOnOpen"
    else:
        entries, path, key = document.get("remediations"), "remediations", "actions"
    names = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        actions = entry.get(key) if isinstance(entry, dict) else None
        for position, raw in enumerate(actions if isinstance(actions, list) else []):
            name = raw.get("action") if isinstance(raw, dict) else None
            if isinstance(name, str):
                names.append((f"{path}[{index}].{key}[{position}].action", name))
    return names
