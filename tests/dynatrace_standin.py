"""A stand-in for the Dynatrace metrics API v2 (`GET /api/v2/metrics/query`), over real HTTP.

The contract it checks, as Dynatrace documents it:
- `Authorization: Api-Token <token>`; missing or wrong → 401 with Dynatrace's error body
  `{"error": {"code": 401, "message": ...}}`.
- `metricSelector` is required (400 otherwise); `from` and `to` are epoch milliseconds with
  from < to (400 otherwise); `resolution=Inf` asks for one data point per series.
- A selector it does not know → 404 with an error body. A known one answers the real shape:
  `{"totalCount", "nextPageKey", "resolution", "result": [{"metricId", "data": [{"dimensions",
  "dimensionMap", "timestamps", "values"}]}]}` — one data point per series at `resolution=Inf`,
  one per minute otherwise.

State: `metrics[selector] = [value of series 1, value of series 2, ...]`, set by the test, or
a function returning that list when each query arrives.
Every request's query parameters are kept in `requests`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

METRICS = web.AppKey("metrics", dict)
REQUESTS = web.AppKey("requests", list)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message}}, status=status)


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
        try:
            start, end = int(params["from"]), int(params["to"])
        except (KeyError, ValueError):
            return _error(400, "Constraints violated: from and to must be epoch milliseconds")
        if start >= end:
            return _error(400, "Constraints violated: from must be before to")
        series = request.app[METRICS].get(selector)
        if callable(series):  # a value that follows something live (the e2e carts app)
            series = series()
        if series is None:
            return _error(404, f"Metric selector: Metric '{selector}' does not exist")
        points = 1 if params.get("resolution") == "Inf" else max(1, (end - start) // 60000)
        data: list[dict[str, Any]] = [
            {
                "dimensions": [f"SERVICE-{index:016X}"],
                "dimensionMap": {"dt.entity.service": f"SERVICE-{index:016X}"},
                "timestamps": [end - 60000 * i for i in reversed(range(points))],
                "values": [value] * points,
            }
            for index, value in enumerate(series)
        ]
        return web.json_response(
            {
                "totalCount": 1,
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
