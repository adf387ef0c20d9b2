"""A stand-in for the sockshop `carts` service: Prometheus metrics whose values a test sets.

It does not serve real traffic; it records synthetic requests at a steady rate (20 batches
a second), each with the latency and the error share last set through `POST /control`
(`{"latency_ms": 450, "error_ratio": 0.1, "rps": 50}`), and exposes them as Keptn's
tutorial service did: the `http_response_time_milliseconds` histogram and the
`http_requests_total{status}` counter.

    python -m tests.apps.carts PORT
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import prometheus_client as prom
from aiohttp import web

BUCKETS = tuple(float(b) for b in range(50, 2001, 50))  # 50 ms resolution up to 2 s
TICK = 0.05

REGISTRY = web.AppKey("registry", prom.CollectorRegistry)
STATE = web.AppKey("state", dict)


def create_app() -> web.Application:
    registry = prom.CollectorRegistry()
    latency = prom.Histogram(
        "http_response_time_milliseconds", "Response time.", buckets=BUCKETS, registry=registry
    )
    requests = prom.Counter("http_requests", "Requests.", ["status"], registry=registry)
    state: dict[str, float] = {"latency_ms": 100.0, "error_ratio": 0.0, "rps": 100.0}
    app = web.Application()
    app[REGISTRY] = registry
    app[STATE] = state

    async def produce(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            carry_ok = carry_err = 0.0
            while True:
                per_tick = state["rps"] * TICK
                carry_err += per_tick * state["error_ratio"]
                carry_ok += per_tick * (1 - state["error_ratio"])
                for status, carry in (("500", carry_err), ("200", carry_ok)):
                    whole = int(carry)
                    if whole:
                        requests.labels(status=status).inc(whole)
                        for _ in range(whole):
                            latency.observe(state["latency_ms"])
                carry_err -= int(carry_err)
                carry_ok -= int(carry_ok)
                await asyncio.sleep(TICK)

        task = asyncio.create_task(loop(), name="carts-traffic")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def control(request: web.Request) -> web.Response:
        changes = await request.json()
        state.update({k: float(v) for k, v in changes.items() if k in state})
        return web.json_response(state)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=prom.generate_latest(registry), headers={"Content-Type": prom.CONTENT_TYPE_LATEST}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    app.cleanup_ctx.append(produce)
    app.router.add_post("/control", control)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
