"""A stand-in for the Dynatrace metrics API v2 (`GET /api/v2/metrics/query`), over real HTTP.

The contract it checks, as Dynatrace documents it ("Metrics API v2 - GET metric data points",
"Metric selector" and "Entity selector" in the Dynatrace API reference):
- `Authorization: Api-Token <token>`; missing or wrong → 401 with Dynatrace's error body
  `{"error": {"code": 401, "message": ...}}`.
- `metricSelector` is required (400 otherwise) and must parse: a metric key followed by
  transformations (`:merge(...)`, `:percentile(N)`, `:avg`, `:toUnit(From,To)`, ...) with
  balanced parentheses, each one Dynatrace knows; otherwise 400. `toUnit` converts between
  the units it names (MicroSecond, MilliSecond, Second, Minute; Byte, KiloByte, MegaByte;
  Percent, Ratio; Count) and an unknown unit is a 400.
- `entitySelector`, when given, must parse as comma-separated criteria Dynatrace knows
  (`type(SERVICE)`, `tag(key:value)`, `entityId(...)`, `mzName(...)`, ...); otherwise 400.
- `from` and `to` are epoch milliseconds with from < to (400 otherwise); `resolution=Inf`
  asks for one data point per series.
- Values are looked up by (metric selector without its `toUnit`, entity selector or None):
  a metric key no entry has → 404 ("Metric ... does not exist"); a known metric asked with
  an entity selector no entry has → 200 with no series (`totalCount` 0), as Dynatrace
  answers a selector that matches no entity. The answer has the real shape:
  `{"totalCount", "nextPageKey", "resolution", "result": [{"metricId", "data":
  [{"dimensions", "dimensionMap", "timestamps", "values"}]}]}` — one data point per series
  at `resolution=Inf`, one per minute otherwise; `totalCount` is the number of series.

State: `metrics[(selector, entity_selector)] = [value of series 1, ...]` in the metric's own
unit (response times in microseconds), or a function returning that list when each query
arrives; a plain `selector` key means "asked without an entitySelector".
Every request's query parameters are kept in `requests`.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from aiohttp import web

METRICS = web.AppKey("metrics", dict)
REQUESTS = web.AppKey("requests", list)

_TRANSFORMATIONS = {
    "merge", "percentile", "avg", "sum", "min", "max", "count", "median", "value", "toUnit",
    "filter", "splitBy", "fold", "names", "parents", "default", "limit", "sort", "rate",
    "last", "lastReal", "timeshift", "rollup", "auto", "delta",
}  # fmt: skip
_ENTITY_CRITERIA = {
    "type", "tag", "entityId", "entityName", "mzId", "mzName", "healthState",
    "fromRelationships", "toRelationships", "not", "in",
}  # fmt: skip
_UNITS = {
    "MicroSecond": ("time", Fraction(1, 10**6)), "MilliSecond": ("time", Fraction(1, 1000)),
    "Second": ("time", Fraction(1)), "Minute": ("time", Fraction(60)),
    "Byte": ("size", Fraction(1)), "KiloByte": ("size", Fraction(1000)),
    "MegaByte": ("size", Fraction(10**6)), "Percent": ("ratio", Fraction(1, 100)),
    "Ratio": ("ratio", Fraction(1)), "Count": ("count", Fraction(1)),
}  # fmt: skip


class SelectorError(Exception):
    pass


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message}}, status=status)


def _split(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside parentheses; SelectorError if they do not balance."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise SelectorError("unbalanced parentheses")
        if char == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise SelectorError("unbalanced parentheses")
    return [*parts, current]


def _term(part: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"([A-Za-z]+)(?:\((.*)\))?", part, flags=re.DOTALL)
    if match is None:
        raise SelectorError(f"cannot parse {part!r}")
    return match[1], match[2]


def parse_metric_selector(selector: str) -> tuple[str, list[tuple[str, str | None]]]:
    """(metric key, transformations) of a metric selector; SelectorError if it is not one."""
    parts = _split(selector, ":")
    first = next(
        (i for i, part in enumerate(parts) if i and part.split("(")[0] in _TRANSFORMATIONS),
        len(parts),
    )
    key = ":".join(parts[:first])
    if not re.fullmatch(r"[A-Za-z][\w.-]*(:[A-Za-z][\w.-]*)*", key):
        raise SelectorError(f"no metric key in {selector!r}")
    return key, [_term(part) for part in parts[first:]]


def check_entity_selector(selector: str) -> None:
    for part in _split(selector, ","):
        name, argument = _term(part)
        if name not in _ENTITY_CRITERIA or argument is None:
            raise SelectorError(f"unknown criterion {part!r}")


def _convert(value: Any, transformations: list[tuple[str, str | None]]) -> Any:
    for name, argument in transformations:
        if name != "toUnit" or value is None:
            continue
        units = [u.strip() for u in (argument or "").split(",")]
        if len(units) != 2 or any(u not in _UNITS for u in units):
            raise SelectorError(f"toUnit: unknown units {argument!r}")
        (source_kind, source), (target_kind, target) = _UNITS[units[0]], _UNITS[units[1]]
        if source_kind != target_kind:
            raise SelectorError(f"toUnit: cannot convert {units[0]} to {units[1]}")
        value = float(Fraction(value) * source / target)
    return value


def create_app(*, token: str) -> web.Application:
    app = web.Application()
    app[METRICS] = {}
    app[REQUESTS] = []

    async def query(request: web.Request) -> web.Response:
        params = dict(request.query)
        request.app[REQUESTS].append(params)
        if request.headers.get("Authorization") != f"Api-Token {token}":
            return _error(401, "Token Authentication failed")
        selector = params.get("metricSelector")
        if not selector:
            return _error(400, "Constraints violated: metricSelector must not be empty")
        entities = params.get("entitySelector")
        try:
            key, transformations = parse_metric_selector(selector)
            if entities is not None:
                check_entity_selector(entities)
        except SelectorError as e:
            return _error(400, f"Constraints violated: the selector cannot be parsed: {e}")
        try:
            start, end = int(params["from"]), int(params["to"])
        except (KeyError, ValueError):
            return _error(400, "Constraints violated: from and to must be epoch milliseconds")
        if start >= end:
            return _error(400, "Constraints violated: from must be before to")
        stored = re.sub(r":toUnit\([^)]*\)", "", selector)
        state = request.app[METRICS]
        series = state.get((stored, entities), state.get(stored) if entities is None else None)
        if callable(series):  # a value that follows something live (the e2e carts app)
            series = series()
        known = any(_metric_key(entry) == key for entry in state)
        if series is None and not known:
            return _error(404, f"Metric selector: Metric '{key}' does not exist")
        try:
            values = [_convert(v, transformations) for v in series or []]
        except SelectorError as e:
            return _error(400, f"Constraints violated: {e}")
        points = 1 if params.get("resolution") == "Inf" else max(1, (end - start) // 60000)
        data: list[dict[str, Any]] = [
            {
                "dimensions": [f"SERVICE-{index:016X}"],
                "dimensionMap": {"dt.entity.service": f"SERVICE-{index:016X}"},
                "timestamps": [end - 60000 * i for i in reversed(range(points))],
                "values": [value] * points,
            }
            for index, value in enumerate(values)
        ]
        return web.json_response(
            {
                "totalCount": len(data),
                "nextPageKey": None,
                "resolution": "Inf" if params.get("resolution") == "Inf" else "1m",
                "result": [
                    {
                        "metricId": selector,
                        "dataPointCountRatio": 0.0001,
                        "dimensionCountRatio": 0.01,
                        "data": data,
                    }
                ],
            }
        )

    app.router.add_get("/api/v2/metrics/query", query)
    return app


def _metric_key(entry: str | tuple[str, str | None]) -> str:
    return parse_metric_selector(entry if isinstance(entry, str) else entry[0])[0]
