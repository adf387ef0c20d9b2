"""remediation.yaml in both Keptn formats, action values, and prefix matching."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from receiver import configtree
from receiver.models import Custom, Escalate, Restart, Rollback, Scale, Toggle
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


def test_an_action_name_the_receiver_does_not_run_is_keptns_custom_action() -> None:
    assert remediation.action("run-snow-wf", {"p": 1}) == Custom(name="run-snow-wf", value={"p": 1})
    rules, errors = remediation.parse(
        yaml.safe_load(
            "remediations:\n- {name: x, actions: [{action: reboot}, {action: restart},"
            " {action: rollback}]}\n"
        ),
        "r.yaml",
    )
    assert errors == []
    assert [a.kind for a in rules.rules[0].actions] == [
        Custom(name="reboot", value=None),
        Restart(),
        Rollback(),
    ]


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ("[a list]", [("", "expected a mapping")]),
        ("name: x",
         [("", "expected Keptn 0.6 `remediations:` or Keptn 0.7 `apiVersion:`/`spec:`")]),
        ("remediations: {a: b}", [("remediations", "expected a list of remediations")]),
        ("remediations: [7]", [("remediations[0]", "expected a mapping with name")]),
        ("remediations: [{actions: []}]",
         [("remediations[0].name", "missing: the problem title prefix")]),
        ("remediations: [{name: x, actions: []}]",
         [("remediations[0].actions", "expected a list of actions")]),
        ("remediations: [{name: x, actions: [scaling]}]",
         [("remediations[0].actions[0]", "expected a mapping with action and value")]),
        ("remediations: [{name: x, actions: [{action: scaling, value: lots}]}]",
         [("remediations[0].actions[0].value",
           "expected a replica delta such as +1, 1 or -1, got 'lots'")]),
        ("remediations: [{name: x, actions: [{action: scaling, value: true}]}]",
         [("remediations[0].actions[0].value",
           "expected a replica delta such as +1, 1 or -1, got True")]),
        ("remediations: [{name: x, actions: [{action: featuretoggle, value: Flag}]}]",
         [("remediations[0].actions[0].value", "expected \"Name:on|off\", got 'Flag'")]),
        ("remediations: [{name: x, actions: [{action: featuretoggle, value: 3}]}]",
         [("remediations[0].actions[0].value",
           "expected \"Name:on|off\" or a map {Name: \"on\"|\"off\"}, got 3")]),
        ("remediations: [{name: x, actions: [{action: featuretoggle, value: 'Flag:maybe'}]}]",
         [("remediations[0].actions[0].value",
           "expected a flag name and on or off, got 'Flag': 'maybe'")]),
        ("remediations: [{name: x, wait: soon, actions: [{action: restart}]}]",
         [("remediations[0].wait",
           "expected a duration such as '10m', '2s' or '1h30m', got 'soon'")]),
        ("remediations: [{name: x, dry_run: yes please, actions: [{action: restart}]}]",
         [("remediations[0].dry_run", "expected true or false")]),
        ("apiVersion: v1\nspec: {remediations: []}",
         [("apiVersion", "expected spec.keptn.sh/0.1.x, got 'v1'")]),
        ("apiVersion: spec.keptn.sh/0.1.4\nkind: Job\nspec: {remediations: []}",
         [("kind", "expected Remediation, got 'Job'")]),
        ("apiVersion: spec.keptn.sh/0.1.4\nspec: 3",
         [("spec", "expected a mapping with remediations")]),
        ("remediations: [{name: '', actions: [{action: restart}]}]",
         [("remediations[0].name", "missing: the problem title prefix")]),
        ("remediations: [{name: x, actions: [{action: 5}]}]",
         [("remediations[0].actions[0].action", "expected an action name, got 5")]),
        ("remediations: [{name: x, actions: [{action: '  '}]}]",
         [("remediations[0].actions[0].action", "expected an action name, got '  '")]),
        ("remediations: [{name: x, actions: [{action: featuretoggle, value: ':off'}]}]",
         [("remediations[0].actions[0].value",
           "expected a flag name and on or off, got '': 'off'")]),
    ],
)  # fmt: skip
def test_a_broken_file_names_the_path_of_each_problem(
    text: str, errors: list[tuple[str, str]]
) -> None:
    _, found = remediation.parse(yaml.safe_load(text), "remediation.yaml")
    assert [(e.file, e.path, e.message) for e in found] == [
        ("remediation.yaml", path, message) for path, message in errors
    ]


def test_a_wrong_api_version_breaks_every_rule_of_the_file() -> None:
    rules, _ = remediation.parse(
        yaml.safe_load(
            "apiVersion: spec.keptn.sh/2\nspec:\n  remediations:\n"
            "  - {problemType: x, actionsOnOpen: [{action: restart}]}\n"
        ),
        "remediation.yaml",
    )
    (rule,) = rules.rules
    assert (
        rule.error
        == "remediation.yaml: apiVersion: expected spec.keptn.sh/0.1.x, got 'spec.keptn.sh/2'"
    )


def test_check_reports_every_file_of_the_tree(tmp_path: Path) -> None:
    good = tmp_path / "shop" / "prod" / "carts"
    good.mkdir(parents=True)
    (good / "remediation.yaml").write_text(KEPTN_06)
    bad = tmp_path / "shop" / "prod" / "orders"
    bad.mkdir(parents=True)
    (bad / "remediation.yaml").write_text("remediations: [{name: x, actions: []}]\n")
    unreadable = tmp_path / "shop" / "prod" / "users"
    unreadable.mkdir(parents=True)
    (unreadable / "remediation.yaml").write_text("remediations: [unclosed\n")
    tree = configtree.scan(tmp_path)
    rule_sets, errors = remediation.load_all(tree)
    assert [(Path(e.file).parent.name, e.path) for e in errors] == [
        ("orders", "remediations[0].actions")
    ]
    # A file that YAML cannot read is the tree's to report, once, where YAML gave up.
    assert [(Path(e.file).parent.name, e.path) for e in configtree.check(tree)] == [
        ("users", "line 2, column 1")
    ]
    assert sorted(file.parent.name for file in rule_sets) == ["carts", "orders"]
    assert rule_sets[bad / "remediation.yaml"].rules == ()


def test_a_broken_rule_does_not_stop_the_rules_after_it_and_carries_its_own_error() -> None:
    rules, errors = remediation.parse(
        yaml.safe_load(
            "remediations:\n- {name: broken, actions: [{action: scaling, value: lots}]}\n"
            "- {name: fine, actions: [{action: restart}]}\n"
            "- 7\n- {name: also fine, actions: [{action: escalate}]}\n"
        ),
        "carts/remediation.yaml",
    )
    assert rules.file == "carts/remediation.yaml"
    assert [(r.problem_type, r.error) for r in rules.rules] == [
        (
            "broken",
            "carts/remediation.yaml: remediations[0].actions[0].value: expected a replica delta"
            " such as +1, 1 or -1, got 'lots'",
        ),
        ("fine", None),
        ("also fine", None),
    ]
    assert [e.path for e in errors] == ["remediations[0].actions[0].value", "remediations[2]"]


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("spec: {remediations: []}", "apiVersion", "expected spec.keptn.sh/0.1.x, got None"),
        ("apiVersion: spec.keptn.sh/0.1.4", "spec", "expected a mapping with remediations"),
    ],
)
def test_either_half_of_the_keptn_07_header_marks_the_07_format(
    text: str, path: str, message: str
) -> None:
    _, errors = remediation.parse(yaml.safe_load(text), "remediation.yaml")
    assert (errors[0].path, errors[0].message) == (path, message)


def test_the_plan_keeps_the_rule_as_written() -> None:
    rules, _ = remediation.parse(yaml.safe_load(KEPTN_07), "carts/remediation.yaml")
    rule = rules.match("Response time degradation detected")
    assert rule is not None
    plan = rule.plan(rule_file="carts/remediation.yaml")
    assert plan.to_json() == {
        "rule": "Response time degradation",
        "actions": [
            {"action": "scaling", "value": "1", "name": "scaling", "description": "Scale up"}
        ],
        "wait": None,
        "evaluation_window": None,
        "dry_run": False,
        "rule_file": "carts/remediation.yaml",
        "approval": "automatic",
        "approval_timeout": None,
    }
    options, _ = remediation.parse(
        yaml.safe_load(
            "remediations:\n- {name: x, wait: 1m, evaluation_window: 2m, dry_run: true,"
            " actions: [{action: scaling, value: -1}]}\n"
        ),
        "r.yaml",
    )
    planned = options.rules[0].plan(rule_file="r.yaml")
    assert (planned.wait, planned.evaluation_window, planned.dry_run) == (60.0, 120.0, True)
    assert planned.actions[0].action == "scaling"
    assert (planned.actions[0].value, planned.actions[0].title) == (-1, None)


@pytest.mark.parametrize(
    "text",
    [
        "remediations:\n- {name: x, approval: manual, approval_timeout: 5m,"
        " actions: [{action: scaling, value: 1}]}\n",
        "apiVersion: spec.keptn.sh/0.1.4\nkind: Remediation\nspec:\n  remediations:\n"
        "  - {problemType: x, approval: manual, approval_timeout: 5m,"
        " actionsOnOpen: [{action: scaling, value: '1'}]}\n",
    ],
    ids=["keptn-0.6", "keptn-0.7"],
)
def test_a_rule_may_ask_for_a_persons_approval_in_either_format(text: str) -> None:
    rules, errors = remediation.parse(yaml.safe_load(text), "r.yaml")
    assert errors == []
    planned = rules.rules[0].plan(rule_file="r.yaml")
    assert (planned.manual_approval, planned.approval_timeout) == (True, 300.0)


def test_approval_is_automatic_or_manual() -> None:
    _, errors = remediation.parse(
        yaml.safe_load("remediations:\n- {name: x, approval: maybe, actions: [{action: restart}]}"),
        "r.yaml",
    )
    assert [(e.path, e.message) for e in errors] == [
        ("remediations[0].approval", "expected automatic or manual, got 'maybe'")
    ]


def test_loading_a_file_keeps_its_good_rules_and_names_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "shop" / "prod" / "carts"
    directory.mkdir(parents=True)
    file = directory / "remediation.yaml"
    file.write_text(
        "remediations:\n- {name: x, actions: [{action: scaling, value: lots}]}\n"
        "- {name: y, actions: [{action: restart}]}\n"
    )
    rule_sets, _ = remediation.load_all(configtree.scan(tmp_path))
    loaded = rule_sets[file]
    assert (loaded.file, [r.problem_type for r in loaded.rules]) == (str(file), ["x", "y"])
    assert str(loaded.rules[0].error).startswith(f"{file}: remediations[0].actions[0].value")
    file.write_text("remediations: [{name: x, actions: []}]\n")
    _, (error,) = remediation.load_all(configtree.scan(tmp_path))
    assert (error.file, error.path) == (str(file), "remediations[0].actions")


def test_check_warns_of_every_action_the_receiver_does_not_run_with_file_and_path(
    tmp_path: Path,
) -> None:
    carts = tmp_path / "shop" / "prod" / "carts"
    carts.mkdir(parents=True)
    (carts / "remediation.yaml").write_text(
        "apiVersion: spec.keptn.sh/0.1.4\nkind: Remediation\nspec:\n  remediations:\n"
        "  - problemType: x\n    actionsOnOpen:\n"
        "    - {action: scaling, value: lots}\n    - {action: run-snow-wf}\n"
        "  - problemType: y\n    actionsOnOpen: [{action: restart}, {action: reboot}, 7]\n"
    )
    orders = tmp_path / "shop" / "prod" / "orders"
    orders.mkdir(parents=True)
    (orders / "remediation.yaml").write_text(
        "remediations:\n- {name: z, actions: [{action: page-someone}, {action: 5}]}\n- 3\n"
    )
    users = tmp_path / "shop" / "prod" / "users"
    users.mkdir(parents=True)
    (users / "remediation.yaml").write_text("remediations: [unclosed\n")  # check() reports
    (tmp_path / "shop" / "prod" / "remediation.yaml").write_text("[a list]\n")
    warnings = remediation.warnings(configtree.scan(tmp_path))
    assert [(Path(w.file).parent.name, w.path, w.message.split(" is ")[0]) for w in warnings] == [
        ("carts", "spec.remediations[0].actionsOnOpen[1].action", "'run-snow-wf'"),
        ("carts", "spec.remediations[1].actionsOnOpen[1].action", "'reboot'"),
        ("orders", "remediations[0].actions[0].action", "'page-someone'"),
    ]
    assert warnings[0].message == (
        "'run-snow-wf' is not an action the receiver runs (scaling, featuretoggle,"
        " toggle-feature, restart, rollback, escalate), nor one mapped under actions.webhooks in"
        " receiver.yaml: a remediation reaching it records that it has no executor for it"
        " and moves on"
    )
    # Mapped to an HTTP action in receiver.yaml, it is one the receiver runs.
    mapped = remediation.warnings(configtree.scan(tmp_path), webhooks=frozenset({"reboot"}))
    assert "'reboot'" not in " ".join(w.message for w in mapped)
    assert len(mapped) == 2
