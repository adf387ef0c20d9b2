"""Evaluate one service's SLO now: query every SLI concurrently, then score.

History (previous evaluations) comes in and the evaluation goes out; where they are kept is
the caller's business (the journal, or a JSON file for the offline CLI).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from receiver import configtree
from receiver.errors import ConfigError, SliError
from receiver.models import ServiceRef
from receiver.slo import builtins, dynatrace, indicators, objectives, providers, scoring
from receiver.slo.providers import Provider

BUILT_IN, JOURNAL = "built-in", "journal"  # where an SLI no sli.yaml defines comes from


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ServiceSlo:
    """A service's SLO with the queries of its indicators and the provider that answers them."""

    service: ServiceRef
    slo: objectives.Slo
    queries: dict[str, str]
    provider: str
    # Where each SLI comes from: an sli.yaml's path, BUILT_IN or JOURNAL.
    sources: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Measured:
    values: dict[str, float | None]
    reasons: dict[str, str]  # why an SLI has no value


def load(
    tree: configtree.ConfigTree,
    ref: ServiceRef,
    *,
    default_provider: str,
    deployment: str = "primary",
) -> ServiceSlo | None:
    """The service's SLO, or None when it has no slo.yaml. Raises ConfigError.

    The provider: a `provider:` in its SLI files (the most specific wins), else the one
    provider whose Keptn directory (`prometheus/sli.yaml`, `dynatrace/sli.yaml`) holds its
    SLIs, else `default_provider`. Indicators: that provider's files, least specific first;
    an SLI of the objectives that none defines comes from the provider's built-ins
    (receiver/slo/builtins.py) or, `problem_open`, from the journal."""
    return _load(tree, ref, default_provider=default_provider, deployment=deployment)[0]


def _load(
    tree: configtree.ConfigTree, ref: ServiceRef, *, default_provider: str, deployment: str
) -> tuple[ServiceSlo | None, list[ConfigError]]:
    """`load`, with the problems of its slo.yaml that do not stop an evaluation."""
    slo_file = tree.slo_file(ref)
    if slo_file is None:
        return None, []
    slo, soft = objectives.parse(tree.document(slo_file), str(slo_file))
    provider = _provider(tree, ref, default_provider)
    queries: dict[str, str] = {}
    sources: dict[str, str] = {}
    for file in tree.sli_files(ref, provider):
        for name, query in indicators.parse(tree.document(file), str(file)).items():
            queries[name], sources[name] = query, str(file)
    for objective in slo.objectives:
        name = objective.sli
        if name in queries:
            continue
        built_in = builtins.query(name, provider, filter=slo.filter, deployment=deployment)
        if name == builtins.PROBLEM_OPEN:
            sources[name] = JOURNAL
        elif built_in is not None:
            queries[name], sources[name] = built_in, BUILT_IN
    service_slo = ServiceSlo(
        service=ref, slo=slo, queries=queries, provider=provider, sources=sources
    )
    return service_slo, soft


def _provider(tree: configtree.ConfigTree, ref: ServiceRef, default: str) -> str:
    explicit = None
    for file in tree.sli_files(ref):  # least specific first
        document = tree.document(file)
        if isinstance(document, dict) and document.get("provider"):
            explicit = str(document["provider"])
    if explicit is not None:
        return explicit
    found = tree.sli_providers(ref)
    return found[0] if len(found) == 1 else default


def missing_queries(service_slo: ServiceSlo, slo_file: str) -> list[ConfigError]:
    return [
        ConfigError(
            slo_file,
            f"objectives[{index}].sli",
            f"no query for {objective.sli!r} in any sli.yaml of {service_slo.service}, and"
            f" {service_slo.provider} has no built-in of that name",
        )
        for index, objective in enumerate(service_slo.slo.objectives)
        if objective.sli not in service_slo.sources
    ]


def sources(slos: Mapping[ServiceRef, ServiceSlo], root: Path) -> list[str]:
    """For `receiver check` (on a tree it passed): per service with an SLO, the provider
    and where each SLI of its objectives comes from — a file, a built-in, the journal."""
    lines = []
    for ref, service_slo in sorted(slos.items(), key=lambda item: str(item[0])):
        used = {o.sli for o in service_slo.slo.objectives}
        where = ", ".join(
            f"{name} <- {_relative(source, root)}"
            for name, source in service_slo.sources.items()
            if name in used
        )
        lines.append(f"{ref}: SLIs from {service_slo.provider}: {where or 'none'}")
    return lines


def _relative(source: str, root: Path) -> str:
    path = Path(source)
    return str(path.relative_to(root)) if path.is_relative_to(root) else source


ProblemOpen = Callable[[], Awaitable[float]]


async def measure(
    service_slo: ServiceSlo,
    provider: Provider,
    *,
    end: float,
    window: float,
    deployment: str,
    problem_open: ProblemOpen | None = None,
) -> Measured:
    """Every SLI of the SLO, queried concurrently over [end - window, end]; `problem_open`
    answers that SLI (1 while a problem the remediation is for is open, else 0)."""
    context = indicators.Context(
        service=service_slo.service,
        deployment=deployment,
        window_seconds=window,
        filter=service_slo.slo.filter,
    )
    names = list(dict.fromkeys(o.sli for o in service_slo.slo.objectives))

    async def one(name: str) -> float:
        query = service_slo.queries.get(name)
        if query is None and name == builtins.PROBLEM_OPEN:
            if problem_open is None:
                raise SliError("problem_open is answered from the receiver's journal; none here")
            return await problem_open()
        if query is None:
            raise SliError(f"no query for {name!r} in sli.yaml")
        filled = indicators.fill(query, context, escape=provider.escape)
        return await provider.value(filled, start=end - window, end=end)

    outcomes = await asyncio.gather(*(one(name) for name in names), return_exceptions=True)
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, SliError):
            values[name], reasons[name] = None, str(outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            values[name] = outcome
    return Measured(values=values, reasons=reasons)


async def evaluate(
    service_slo: ServiceSlo,
    provider: Provider,
    *,
    end: float,
    window: float,
    deployment: str,
    previous: Sequence[scoring.Previous],
    problem_open: ProblemOpen | None = None,
) -> tuple[Measured, scoring.Evaluation]:
    measured = await measure(
        service_slo,
        provider,
        end=end,
        window=window,
        deployment=deployment,
        problem_open=problem_open,
    )
    evaluation = scoring.evaluate(
        service_slo.slo, measured.values, previous, reasons=measured.reasons
    )
    return measured, evaluation


def load_all(
    tree: configtree.ConfigTree, *, default_provider: str, deployment: str
) -> tuple[dict[ServiceRef, ServiceSlo], list[ConfigError]]:
    """The SLO of every service that has one, and every problem with the SLO and SLI files
    (a file that cannot be read at all is configtree.check's to report)."""
    errors: list[ConfigError] = []
    for file in tree.named(configtree.SLI):
        try:
            document = tree.document(file)
        except ConfigError:
            continue
        try:
            indicators.parse(document, str(file))
        except ConfigError as e:
            errors.append(e)
            continue
        provider = document.get("provider")
        if provider is not None and provider not in providers.NAMES:
            errors.append(
                ConfigError(str(file), "provider", f"expected one of {', '.join(providers.NAMES)}")
            )
    unreadable = {str(e) for e in tree.unreadable()}
    slos: dict[ServiceRef, ServiceSlo] = {}
    for ref in tree.services():
        try:
            service_slo, soft = _load(
                tree, ref, default_provider=default_provider, deployment=deployment
            )
        except ConfigError as e:
            if str(e) not in unreadable:
                errors.append(e)
            continue
        if service_slo is None:
            continue
        slos[ref] = service_slo
        errors.extend(soft)
        errors.extend(missing_queries(service_slo, str(tree.slo_file(ref))))
        errors.extend(foreign_queries(service_slo))
    return slos, _unique(errors)


def warnings(slos: Mapping[ServiceRef, ServiceSlo]) -> list[ConfigError]:
    """Worth knowing, not wrong (for `receiver check`): Dynatrace indicators in Keptn 0.6's
    `?scope=` form, which are sent as entitySelector."""
    found = []
    for service_slo in slos.values():
        if service_slo.provider != "dynatrace":
            continue
        for name, source in service_slo.sources.items():
            if source in (BUILT_IN, JOURNAL) or not dynatrace.uses_scope(service_slo.queries[name]):
                continue
            found.append(
                ConfigError(
                    source,
                    f"indicators.{name}",
                    "Keptn 0.6's ?scope= form: sent as entitySelector (with"
                    " type(SERVICE) unless it names a type); write"
                    " metricSelector=...&entitySelector=... to say so yourself",
                )
            )
    return _unique(found)


def foreign_queries(service_slo: ServiceSlo) -> list[ConfigError]:
    """Queries of the other provider, by file and path: a Dynatrace metric selector where
    Prometheus will be asked (sent as PromQL it fails, and promtool rejects the alert rule
    made of it), or PromQL where Dynatrace will be asked."""
    provider = service_slo.provider
    if provider not in ("prometheus", "dynatrace"):
        return []
    found = []
    for name, source in service_slo.sources.items():  # each query in force, and its file
        if source in (BUILT_IN, JOURNAL):
            continue
        query = service_slo.queries[name]
        if provider == "prometheus" and is_dynatrace_selector(query):
            what, other = "a Dynatrace metric selector", "dynatrace"
        elif provider == "dynatrace" and looks_like_promql(query):
            what, other = "PromQL", "prometheus"
        else:
            continue
        found.append(
            ConfigError(
                source,
                f"indicators.{name}",
                f"{what}, but the SLIs of {service_slo.service} come from {provider}:"
                f" set `provider: {other}` in this sli.yaml (or sli.provider)",
            )
        )
    return found


_PROMQL = re.compile(
    r"\{[^}]*[=~]"  # label matchers: Dynatrace selectors have no braces
    r"|^\s*(sum|avg|min|max|count|rate|irate|increase|histogram_quantile|topk|bottomk|"
    r"quantile|stddev|stdvar|abs|ceil|floor|round|absent|delta|deriv|label_\w+|clamp\w*|"
    r"avg_over_time|max_over_time|min_over_time|sum_over_time|count_over_time)\s*(by|without)?"
    r"\s*\("
)


def looks_like_promql(query: str) -> bool:
    """PromQL, as far as it can be told from a Dynatrace selector: label matchers in braces,
    or an aggregation or function call at the start (a metric key starts a selector)."""
    return _PROMQL.search(query) is not None


def is_dynatrace_selector(query: str) -> bool:
    text = query.strip().lstrip("?")
    return text.startswith(("metricSelector=", "builtin:", "calc:", "ext:"))


def _unique(errors: list[ConfigError]) -> list[ConfigError]:
    # A broken stage- or project-level sli.yaml is met once per service that uses it.
    return list({str(e): e for e in errors}.values())
