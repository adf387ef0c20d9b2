"""remediation.yaml in both Keptn formats, action values, and prefix matching."""

from __future__ import annotations

import pytest
import yaml

from receiver.models import Escalate, Restart, Scale, Toggle
from receiver.rules import remediation

KEPTN_06 = """
remediations:
- name: response_time_p90
  actions:
  - action: scaling
    value: +1
- name: "Failure rate increase"
  actions:
  - action: featuretoggle
    value: EnablePromotion:off
"""

KEPTN_07 = """
apiVersion: spec.keptn.sh/0.1.4
kind: Remediation
metadata:
  name: carts-remediation
spec:
  remediations:
  - problemType: Response time degradation
    actionsOnOpen:
    - action: scaling
      name: scaling
      description: Scale up
      value: "1"
  - problemType: Failure rate increase
    actionsOnOpen:
    - action: toggle-feature
      name: Toggle feature flag
      description: Turn the promotion off
      value:
        EnablePromotion: "off"
  - problemType: default
    actionsOnOpen:
    - action: escalate
      name: escalate
"""


def rules(text: str) -> remediation.RuleSet:
    rule_set, errors = remediation.parse(yaml.safe_load(text), "remediation.yaml")
    assert errors == []
    return rule_set


def test_keptn_06_files_load_unchanged() -> None:
    rule_set = rules(KEPTN_06)
    assert [(r.problem_type, [a.kind for a in r.actions]) for r in rule_set.rules] == [
        ("response_time_p90", [Scale(delta=1)]),
        ("Failure rate increase", [Toggle(flags=(("EnablePromotion", False),))]),
    ]


def test_keptn_07_files_load_unchanged() -> None:
    rule_set = rules(KEPTN_07)
    assert [(r.problem_type, [a.kind for a in r.actions]) for r in rule_set.rules] == [
        ("Response time degradation", [Scale(delta=1)]),
        ("Failure rate increase", [Toggle(flags=(("EnablePromotion", False),))]),
        ("default", [Escalate()]),
    ]
    first = rule_set.rules[0].actions[0]
    assert (first.title, first.description, first.value) == ("scaling", "Scale up", "1")


@pytest.mark.parametrize(
    ("value", "delta"), [("+1", 1), (1, 1), ("1", 1), (-1, -1), ("-2", -2), (" +3 ", 3)]
)
def test_scaling_values_are_replica_deltas(value: object, delta: int) -> None:
    assert remediation.action("scaling", value) == Scale(delta=delta)


@pytest.mark.parametrize(
    ("value", "flags"),
    [
        ("EnablePromotion:off", (("EnablePromotion", False),)),
        ("EnablePromotion:on", (("EnablePromotion", True),)),
        ({"EnablePromotion": "off"}, (("EnablePromotion", False),)),
        ({"EnablePromotion": False}, (("EnablePromotion", False),)),  # YAML 1.1's bare off
        ({"A": True, "B": "off"}, (("A", True), ("B", False))),
        ("A:on, B:off", (("A", True), ("B", False))),
    ],
)
def test_toggle_values(value: object, flags: tuple[tuple[str, bool], ...]) -> None:
    assert remediation.action("toggle-feature", value) == Toggle(flags=flags)
    assert remediation.action("featuretoggle", value) == Toggle(flags=flags)


def test_unquoted_yaml_off_is_read_as_off() -> None:
    document = yaml.safe_load("value: {EnablePromotion: off}")
    assert remediation.action("toggle-feature", document["value"]) == Toggle(
        flags=(("EnablePromotion", False),)
    )


def test_restart_takes_no_value() -> None:
    assert remediation.action("restart", None) == Restart()


def test_matching_is_by_prefix_in_file_order_with_default_as_fallback() -> None:
    rule_set = rules(
        KEPTN_07.replace(
            "- problemType: Failure rate increase",
            "- problemType: Response time\n    actionsOnOpen:\n"
            "    - {action: restart}\n  - problemType: Failure rate increase",
        )
    )
    match = rule_set.match("Response time degradation on Web service ItemsController")
    assert match is not None
    assert match.problem_type == "Response time degradation"
    other = rule_set.match("Response time spike")
    assert other is not None
    assert other.problem_type == "Response time"
    fallback = rule_set.match("Memory saturation")
    assert fallback is not None
    assert fallback.problem_type == "default"
    assert rules(KEPTN_06).match("Memory saturation") is None


def test_per_rule_options() -> None:
    rule_set = rules(
        "remediations:\n- name: x\n  wait: 2m\n  evaluation_window: 5m\n"
        "  dry_run: true\n  actions: [{action: restart}]\n"
    )
    (rule,) = rule_set.rules
    assert (rule.wait, rule.evaluation_window, rule.dry_run) == (120.0, 300.0, True)


def test_a_broken_rule_keeps_its_error_and_still_matches() -> None:
    rule_set, errors = remediation.parse(
        yaml.safe_load(
            "remediations:\n- name: Failure\n  actions: [{action: featuretoggle, value: 3}]\n"
            "- name: default\n  actions: [{action: escalate}]\n"
        ),
        "remediation.yaml",
    )
    assert [e.path for e in errors] == ["remediations[0].actions[0].value"]
    match = rule_set.match("Failure rate increase")
    assert match is not None
    assert match.error is not None


def test_an_unknown_action_in_a_journaled_plan_is_an_error_not_an_escalation() -> None:
    with pytest.raises(ValueError, match="unknown action 'reboot'"):
        remediation.action("reboot", None)
