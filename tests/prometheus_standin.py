"""A stand-in for Prometheus' instant-query API (`GET /api/v1/query`), for engine scenarios
that need SLI values a test sets at will (the real Prometheus is tested in tests/slo).

Contract: `query` and `time` parameters; answers `{"status": "success", "data":
{"resultType": "vector", "result": [{"metric": {}, "value": [time, "<number>"]}]}}`, or an
empty vector when no value is set; an unparsable query (unbalanced parentheses) is a 400
`bad_data` error as Prometheus answers it. The value is chosen by the first key of `values`
that occurs in the query. Every query is kept in `queries`.
"""

from __future__ import annotations

from aiohttp import web

VALUES = web.AppKey("values", dict)
QUERIES = web.AppKey("queries", list)


def create_app(values: dict[str, float]) -> web.Application:
    app = web.Application()
    app[VALUES] = values
    app[QUERIES] = []

    async def query(request: web.Request) -> web.Response:
        expression = request.query.get("query", "")
        request.app[QUERIES].append((expression, request.query.get("time")))
        if expression.count("(") != expression.count(")"):
            return web.json_response(
                {
                    "status": "error",
                    "errorType": "bad_data",
                    "error": "parse error: unclosed left parenthesis",
                },
                status=400,
            )
        for key, value in request.app[VALUES].items():
            if key in expression:
                return web.json_response(
                    {
                        "status": "success",
                        "data": {
                            "resultType": "vector",
                            "result": [
                                {
                                    "metric": {},
                                    "value": [float(request.query.get("time", 0)), str(value)],
                                }
                            ],
                        },
                    }
                )
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": []}}
        )

    app.router.add_get("/api/v1/query", query)
    return app
