"""sli.yaml: indicator name → query, merged project < stage < service, placeholders filled.

Placeholders, as Keptn's SLI providers replaced them: every SLO filter key as `$key` and
`$KEY` (quotes stripped from the value), then `$PROJECT`, `$STAGE`, `$SERVICE`,
`$DEPLOYMENT` (also in lower case), and `$DURATION_SECONDS` (the window, e.g. `600s`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from receiver import durations
from receiver.errors import ConfigError
from receiver.models import ServiceRef


def parse(document: object, file: str) -> dict[str, str]:
    if not isinstance(document, dict):
        raise ConfigError(file, "", "expected a mapping with spec_version and indicators")
    indicators = document.get("indicators")
    if indicators is None:
        return {}
    if not isinstance(indicators, dict):
        raise ConfigError(file, "indicators", "expected a mapping of SLI name to query")
    queries: dict[str, str] = {}
    for name, query in indicators.items():
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(file, f"indicators.{name}", "expected a query string")
        queries[str(name)] = query
    return queries


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    """What placeholders are filled from."""

    service: ServiceRef
    deployment: str
    window_seconds: float
    filter: Mapping[str, str]


def fill(query: str, context: Context, *, escape: Callable[[str], str] = str) -> str:
    """`query` with every placeholder replaced; `escape` is applied to each substituted value."""
    ref = context.service
    replacements: dict[str, str] = {}
    for key, value in context.filter.items():
        clean = value.replace("'", "").replace('"', "")
        replacements["$" + key] = clean
        replacements["$" + key.upper()] = clean
    for name, value in (
        ("PROJECT", ref.project),
        ("STAGE", ref.stage),
        ("SERVICE", ref.service),
        ("DEPLOYMENT", context.deployment),
    ):
        replacements.setdefault("$" + name, value)
        replacements.setdefault("$" + name.lower(), value)
    replacements["$DURATION_SECONDS"] = durations.format_seconds(context.window_seconds)
    # Longest names first, so that `$SERVICE_NAME` is not read as `$SERVICE` + `_NAME`.
    for placeholder in sorted(replacements, key=len, reverse=True):
        query = query.replace(placeholder, escape(replacements[placeholder]))
    return query
