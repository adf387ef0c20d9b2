"""SLO evaluation time: 10 SLIs against a Prometheus stand-in whose queries take a fixed delay.

Prints the time of one whole evaluation (all SLIs queried, then scored) divided by the time
of the slowest single query. Queried one after another this would be ~10; the target is
≤ 1.5, i.e. the queries run concurrently.

    python bench/slo.py [--delay 0.2] [--slis 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from receiver.models import ServiceRef
from receiver.slo import evaluation, objectives, scoring
from receiver.slo.prometheus import Prometheus


def standin(delay: float) -> web.Application:
    async def query(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response(
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": {}, "value": [time.time(), "42"]}],
                },
            }
        )

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    return app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--slis", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    names = [f"sli_{i}" for i in range(args.slis)]
    slo, _ = objectives.parse(
        {
            "objectives": [{"sli": n, "pass": [{"criteria": ["<100"]}]} for n in names],
            "total_score": {"pass": "90%"},
        },
        "bench",
    )
    service_slo = evaluation.ServiceSlo(
        service=ServiceRef(project="p", stage="s", service="v"),
        slo=slo,
        queries={n: f"{n}_total" for n in names},
        provider="prometheus",
    )
    server = TestServer(standin(args.delay))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            provider = Prometheus(session, str(server.make_url("")))
            singles, totals = [], []
            for _ in range(args.rounds):
                for name in names:
                    started = time.perf_counter()
                    await provider.value(f"{name}_total", start=0, end=time.time())
                    singles.append(time.perf_counter() - started)
                started = time.perf_counter()
                measured = await evaluation.measure(
                    service_slo, provider, end=time.time(), window=600, deployment="primary"
                )
                result = scoring.evaluate(slo, measured.values)
                totals.append(time.perf_counter() - started)
                assert result.result == "pass", result
    finally:
        await server.close()
    slowest = max(singles)
    print(f"{args.slis} SLIs, each query delayed {args.delay * 1000:.0f} ms, {args.rounds} rounds")
    print(f"slowest single query   {slowest * 1000:7.1f} ms")
    print(
        f"evaluation, median     {statistics.median(totals) * 1000:7.1f} ms"
        f"   (max {max(totals) * 1000:.1f} ms)"
    )
    print(
        f"ratio (median / slowest) {statistics.median(totals) / slowest:.2f}"
        f"   (max / slowest {max(totals) / slowest:.2f}; sequential would be ~{args.slis})"
    )


if __name__ == "__main__":
    asyncio.run(main())
