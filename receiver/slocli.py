"""`receiver slo evaluate` (offline and live) and `receiver rules`: the SLO commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from receiver import configuration, durations, journal, settings
from receiver.errors import ConfigError, JournalUnavailable, SliError
from receiver.models import ServiceRef
from receiver.slo import alerting, evaluation, objectives, providers, scoring


class InputError(Exception):
    """A bad input file of the offline evaluation: exit code 2 with this message."""


def add_commands(commands: Any) -> None:
    slo = commands.add_parser("slo", help="evaluate service-level objectives")
    slo_commands = slo.add_subparsers(dest="slo_command", required=True)
    evaluate = slo_commands.add_parser(
        "evaluate",
        help="score SLI values against an slo.yaml (offline with --slo, live with --config)",
        description=(
            "Offline: --slo SLO.yaml --values VALUES.json [--previous PREVIOUS.json] prints "
            "the evaluation as JSON. Live: --config DIR --project P --stage S --service X "
            "queries the configured SLI provider now."
        ),
    )
    evaluate.add_argument("--slo", type=Path, help="slo.yaml to evaluate (offline)")
    evaluate.add_argument("--values", type=Path, help='JSON {"<sli>": number or null}')
    evaluate.add_argument(
        "--previous",
        type=Path,
        help='JSON list, newest first, of {"result": ..., "values": {...}}',
    )
    evaluate.add_argument("--config", type=Path, help="configuration directory (live)")
    evaluate.add_argument("--project")
    evaluate.add_argument("--stage")
    evaluate.add_argument("--service")
    evaluate.add_argument("--window", help="evaluation window, e.g. 10m (default from settings)")
    evaluate.add_argument("--output", choices=("table", "json"), default="table")
    evaluate.set_defaults(run=run_evaluate)

    rules = commands.add_parser("rules", help="generate Prometheus alerting rules from SLOs")
    rules.add_argument("--config", type=Path, default=Path("config"), help="configuration dir")
    rules.add_argument(
        "--format", choices=("prometheus-operator", "prometheus"), default="prometheus-operator"
    )
    rules.add_argument("--for", dest="for_", default="10m", help="alert `for` (Keptn: 10m)")
    rules.add_argument("--window", default="180s", help="$DURATION_SECONDS (Keptn: 180s)")
    rules.set_defaults(run=run_rules)


def run_evaluate(args: argparse.Namespace) -> int:
    if args.slo is not None:
        return _offline(args)
    if args.config is not None:
        return _live(args)
    print(
        "receiver: give --slo and --values (offline) or --config, --project, --stage and"
        " --service (live)",
        file=sys.stderr,
    )
    return 2


# -- offline ---------------------------------------------------------------------------------


def _offline(args: argparse.Namespace) -> int:
    try:
        if args.values is None:
            raise InputError("--values is required with --slo")
        slo, warnings = objectives.load(args.slo)
        values = _values(_read_json(args.values), str(args.values))
        previous = _previous(args.previous)
    except (ConfigError, InputError) as e:
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"receiver: warning: {warning}", file=sys.stderr)
    result = scoring.evaluate(slo, values, previous)
    print(json.dumps(result.to_json()))
    return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON: {e}") from None


def _values(document: Any, where: str) -> dict[str, float | None]:
    if not isinstance(document, dict):
        raise InputError(f'{where}: expected an object {{"<sli name>": number or null}}')
    for name, value in document.items():
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise InputError(f"{where}: {name}: expected a number or null, got {value!r}")
    return document


def _previous(path: Path | None) -> list[scoring.Previous]:
    if path is None or not path.exists():
        return []  # no file, no history
    document = _read_json(path)
    if not isinstance(document, list):
        raise InputError(f"{path}: expected a list, newest first, of {{result, values}}")
    history = []
    for index, item in enumerate(document):
        where = f"{path}: [{index}]"
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected an object with result and values")
        result = item.get("result")
        if not isinstance(result, str) or result.lower() not in ("pass", "warning", "fail"):
            raise InputError(f"{where}.result: expected pass, warning or fail, got {result!r}")
        history.append(
            scoring.Previous(
                result=result.lower(), values=_values(item.get("values", {}), f"{where}.values")
            )
        )
    return history


# -- live ------------------------------------------------------------------------------------


def _live(args: argparse.Namespace) -> int:
    missing = [name for name in ("project", "stage", "service") if not getattr(args, name)]
    if missing:
        print(f"receiver: --config needs --{', --'.join(missing)}", file=sys.stderr)
        return 2
    ref = ServiceRef(project=args.project, stage=args.stage, service=args.service)
    try:
        loaded = configuration.require(args.config)
        config = loaded.settings
        service_slo = loaded.slos.get(ref)
        window = (
            durations.parse(args.window) if args.window else config.remediation_evaluation_window
        )
    except (ConfigError, ValueError) as e:
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    if service_slo is None:
        print(f"receiver: no slo.yaml for {ref}", file=sys.stderr)
        return 2
    previous = _journal_history(config.store_path, service_slo)
    end = time.time()
    measured, result = asyncio.run(
        _measure(service_slo, config, end=end, window=window, previous=previous)
    )
    if args.output == "json":
        document = result.to_json() | {
            "service": str(ref),
            "provider": service_slo.provider,
            "window": {"start": end - window, "end": end},
            "reasons": measured.reasons,
        }
        print(json.dumps(document))
    else:
        print(_table(service_slo, result, window=window, end=end))
    if measured.reasons:  # not an evaluation to trust: the provider did not answer for these
        for name, reason in measured.reasons.items():
            print(f"receiver: {name}: no value: {reason}", file=sys.stderr)
        return 1
    return 0


async def _measure(
    service_slo: evaluation.ServiceSlo,
    config: settings.Settings,
    *,
    end: float,
    window: float,
    previous: list[scoring.Previous],
) -> tuple[evaluation.Measured, scoring.Evaluation]:
    async with aiohttp.ClientSession() as session:
        provider = providers.create(service_slo.provider, session, config)
        return await evaluation.evaluate(
            service_slo,
            provider,
            end=end,
            window=window,
            deployment=config.sli_deployment,
            previous=previous,
            problem_open=lambda: _problem_open(config.store_path, service_slo.service),
        )


async def _problem_open(path: str, ref: ServiceRef) -> float:
    """`problem_open` from the journal beside us: 1 while the service has an open problem."""
    return await asyncio.to_thread(_read_problem_open, path, ref)


def _read_problem_open(path: str, ref: ServiceRef) -> float:
    if not Path(path).exists():
        raise SliError(f"problem_open is answered from the receiver's journal; none at {path}")
    try:
        return 1.0 if journal.read_open_problems(path, ref) else 0.0
    except JournalUnavailable as e:
        raise SliError(str(e)) from e


def _journal_history(path: str, service_slo: evaluation.ServiceSlo) -> list[scoring.Previous]:
    """The service's evaluation history from the journal, if there is one here."""
    if not Path(path).exists():
        return []
    comparison = service_slo.slo.comparison
    admitted = [
        r for r in ("pass", "warning", "fail") if comparison.include_result_with_score.admits(r)
    ]
    try:
        rows = journal.read_history(
            path, service_slo.service, results=admitted, limit=comparison.previous_count
        )
    except JournalUnavailable as e:  # not a journal, or one without evaluations: no history
        print(f"receiver: warning: no history: {e}", file=sys.stderr)
        rows = []
    return [scoring.Previous(result=result, values=values) for result, values in rows]


def _table(
    service_slo: evaluation.ServiceSlo, result: scoring.Evaluation, *, window: float, end: float
) -> str:
    moment = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(end))
    lines = [
        f"{service_slo.service}   provider {service_slo.provider}   window "
        f"{durations.format_seconds(window)} ending {moment} UTC",
        "",
        f"{'SLI':<28} {'VALUE':>12}  {'STATUS':<8} {'SCORE':>7}  TARGETS",
    ]
    for objective in result.objectives:
        value = "-" if objective.value is None else f"{objective.value:.4g}"
        score = f"{objective.score:g}/{objective.weight}" if objective.status != "info" else "-"
        targets = "  ".join(
            f"{t.criteria}{'' if t.target is None else f' ({t.target:.4g})'}"
            f" {'violated' if t.violated else 'ok'}"
            for t in objective.targets
        )
        if objective.message:
            targets = f"no value: {objective.message}"
        key = " (key)" if objective.key_sli else ""
        lines.append(
            f"{objective.sli + key:<28} {value:>12}  {objective.status:<8} {score:>7}  {targets}"
        )
    slo = service_slo.slo
    limits = ", ".join(
        f"{name} >= {limit:g}%"
        for name, limit in (("pass", slo.total_pass), ("warning", slo.total_warning))
        if limit is not None
    )
    score_text = f"{result.score:.1f}" if math.isfinite(result.score) else str(result.score)
    lines += [
        "",
        f"result: {result.result}   score {score_text}" + (f"   ({limits})" if limits else ""),
    ]
    return "\n".join(lines)


# -- rules -----------------------------------------------------------------------------------


def run_rules(args: argparse.Namespace) -> int:
    """Rules for every service whose SLIs come from Prometheus, from a configuration that
    `receiver check` passes (exit 1 with the same problems otherwise: an alert made of a
    broken SLO would fire for nothing, or never)."""
    try:
        window = durations.parse(args.window)
        durations.parse(args.for_)
    except ValueError as e:
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    loaded = configuration.load(args.config)
    if loaded.configuration is None:
        for error in loaded.errors:
            print(f"receiver: {error}", file=sys.stderr)
        return 1
    config = loaded.configuration
    groups = []
    for ref, service_slo in sorted(config.slos.items(), key=lambda item: str(item[0])):
        if service_slo.provider != "prometheus":
            print(
                f"receiver: {ref}: SLIs come from {service_slo.provider}; no Prometheus rules",
                file=sys.stderr,
            )
            continue
        groups.append(
            (
                service_slo,
                alerting.rules(
                    service_slo,
                    window=window,
                    for_=args.for_,
                    deployment=config.settings.sli_deployment,
                ),
            )
        )
    print(
        yaml.safe_dump(alerting.document(groups, format=args.format), sort_keys=False, width=1000),
        end="",
    )
    return 0
