"""A stand-in for Prometheus' instant-query API (`GET /api/v1/query`), for engine scenarios
that need SLI values a test sets at will (the real Prometheus is tested in tests/slo).

Contract (Prometheus HTTP API, "Instant queries"): `query` and `time` (unix seconds or RFC
3339) parameters; the answer `{"status": "success", "data": {"resultType": "vector",
"result": [{"metric": {}, "value": [time, "<number>"]}]}}`, numbers written as Prometheus
writes them (`NaN`, `+Inf`, `-Inf`), the sample stamped with the evaluation time asked for.

It checks what it is asked, strictly:
- `values` maps the *exact* query text to its value (None: an empty vector). A query the test
  did not expect is a 400 — stricter than Prometheus, which would answer an empty vector
  that Keptn's rules score as 0: a wrongly rendered query must not pass as "no errors".
- A query that does not parse — unbalanced brackets, a `$PLACEHOLDER` left unrendered — is
  the 400 `bad_data` error Prometheus answers.
- A missing or unparsable `time` is a 400: every evaluation names its time.
- With `authorization`, a request without exactly that Authorization header is a 401.
Every query is kept in `queries` as (query, time as a float).
"""

from __future__ import annotations

import datetime
import math

from aiohttp import web

VALUES = web.AppKey("values", dict)
QUERIES = web.AppKey("queries", list)

# The example configuration's SLIs for sockshop/production/carts, rendered as the receiver must
# render them (config/sockshop/production/carts/sli.yaml), for an evaluation window.


def response_time_p90(window: str = "600s") -> str:
    return (
        "histogram_quantile(0.9, sum by(le) (rate(http_response_time_milliseconds_bucket"
        f'{{job="carts-sockshop-production"}}[{window}])))'
    )


def error_rate(window: str = "600s") -> str:
    return (
        'sum(rate(http_requests_total{job="carts-sockshop-production",status=~"5.."}'
        f'[{window}])) / sum(rate(http_requests_total{{job="carts-sockshop-production"}}'
        f"[{window}]))"
    )


def _bad(error: str) -> web.Response:
    return web.json_response(
        {"status": "error", "errorType": "bad_data", "error": error}, status=400
    )


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _parse_error(query: str) -> str | None:
    if "$" in query:
        return f"1:{query.index('$') + 1}: parse error: unexpected character: '$'"
    depth: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in query:
        if char in "([{":
            depth.append(char)
        elif char in pairs and (not depth or depth.pop() != pairs[char]):
            return f"parse error: unexpected {char!r}"
    return "parse error: unclosed left parenthesis" if depth else None


def create_app(
    values: dict[str, float | None], *, authorization: str | None = None
) -> web.Application:
    """`authorization`: the Authorization header every request must carry (a Prometheus
    behind an authenticating proxy, or with basic auth in its web config); 401 otherwise."""
    app = web.Application()
    app[VALUES] = values
    app[QUERIES] = []

    async def query(request: web.Request) -> web.Response:
        if authorization is not None and request.headers.get("Authorization") != authorization:
            return web.Response(status=401, text="Unauthorized\n")
        expression = request.query.get("query", "")
        moment = _time(request.query.get("time"))
        request.app[QUERIES].append((expression, moment))
        error = _parse_error(expression)
        if error is not None:
            return _bad(error)
        if moment is None:
            return _bad(f"invalid parameter 'time': {request.query.get('time')!r}")
        if expression not in request.app[VALUES]:
            return _bad(f"stand-in: no value set for the query {expression!r}")
        value = request.app[VALUES][expression]
        result = [] if value is None else [{"metric": {}, "value": [moment, _number(value)]}]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    app.router.add_get("/api/v1/query", query)
    return app
