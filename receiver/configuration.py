"""The configuration directory, read once and checked whole: receiver.yaml with the
environment, and every service file under it.

`receiver check`, `serve`, a reload (SIGHUP, POST /-/reload, a change on disk),
`receiver manifests` and `receiver rules` all load it through `load`, so that what one
accepts the others run and what one refuses none runs. A configuration with any problem is
refused whole: `serve` does not start on it (exit 2, with the messages `check` prints), a
reload keeps the one in force. Starting with a broken service left out would record its
problems as "nothing to do" while the person who broke the file believes it is handled.

The Configuration holds what was read, not where to read it again: remediations evaluate
the SLO of the configuration in force, not whatever the file says at that moment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from receiver import configtree, settings, triage
from receiver.configtree import ConfigTree
from receiver.errors import ConfigError, ConfigRefused
from receiver.models import ServiceRef
from receiver.rules import remediation
from receiver.settings import Settings
from receiver.slo import evaluation


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Configuration:
    """A configuration that loaded without a problem."""

    settings: Settings
    tree: ConfigTree
    rule_sets: Mapping[Path, remediation.RuleSet]  # every remediation.yaml, by its path
    rules: triage.Rules  # the same, ready to decide
    slos: Mapping[ServiceRef, evaluation.ServiceSlo]  # every service with a slo.yaml

    @property
    def root(self) -> Path:
        return self.tree.root

    def services(self) -> tuple[ServiceRef, ...]:
        return self.tree.services()


@dataclasses.dataclass(frozen=True, slots=True)
class Loaded:
    configuration: Configuration | None  # None: there is at least one error
    errors: tuple[ConfigError, ...]  # none: it may be put in force
    warnings: tuple[ConfigError, ...]  # worth knowing, not wrong
    settings: Settings | None = None  # receiver.yaml and the environment, when they load


def load(root: Path, environ: Mapping[str, str] | None = None) -> Loaded:
    """Everything in `root`, and every problem with it (each once, in the order of the
    files' concerns: settings, the tree, SLOs and SLIs, remediation rules)."""
    environ = os.environ if environ is None else environ
    loaded, errors = settings.load_checked(root, environ)
    warnings = settings.overridden(root, environ) if loaded is not None else []
    return _with_service_files(root, loaded, errors, warnings)


def with_settings(root: Path, given: Settings) -> Configuration:
    """The service files of `root` under `given` settings instead of receiver.yaml and the
    environment (for tests and tools that make their settings themselves); ConfigRefused
    with every problem of the files otherwise."""
    loaded = _with_service_files(root, given, [], [])
    if loaded.configuration is None:
        raise ConfigRefused(str(root), loaded.errors)
    return loaded.configuration


def _with_service_files(
    root: Path,
    loaded: Settings | None,
    errors: list[ConfigError],
    warnings: list[ConfigError],
) -> Loaded:
    try:
        tree = configtree.scan(root)
    except ConfigError as e:
        return Loaded(None, _unique([*errors, e]), tuple(warnings), loaded)
    known = loaded or Settings()  # the defaults, to check the service files by
    slos, slo_errors = evaluation.load_all(
        tree, default_provider=known.sli_provider, deployment=known.sli_deployment
    )
    rule_sets, rule_errors = remediation.load_all(tree)
    errors = [*errors, *configtree.check(tree), *slo_errors, *rule_errors]
    warnings = [
        *warnings,
        *remediation.warnings(tree, webhooks=frozenset(known.action_webhooks)),
        *evaluation.warnings(slos),
    ]
    if errors or loaded is None:
        return Loaded(None, _unique(errors), tuple(warnings), loaded)
    configuration = Configuration(
        settings=loaded,
        tree=tree,
        rule_sets=rule_sets,
        rules=triage.Rules(root, rule_sets),
        slos=slos,
    )
    return Loaded(configuration, (), tuple(warnings), loaded)


def require(root: Path, environ: Mapping[str, str] | None = None) -> Configuration:
    """The configuration in `root` for a tool that cannot go on without one; ConfigRefused
    with every problem otherwise."""
    loaded = load(root, environ)
    if loaded.configuration is None:
        raise ConfigRefused(str(root), loaded.errors)
    return loaded.configuration


def _unique(errors: list[ConfigError]) -> tuple[ConfigError, ...]:
    # A broken file met by two concerns (a project-level sli.yaml every service uses) is
    # one problem.
    return tuple({str(e): e for e in errors}.values())
