"""The demo `carts` service of Keptn's self-healing tutorials, small enough to run anywhere.

It serves synthetic traffic to itself (20 batches a second of `load` * 50 requests/s) and
exposes what Keptn's carts exposed: the `http_response_time_milliseconds` histogram and the
`http_requests_total{status}` counter. Like the real thing it feels its deployment:

- latency = `base_ms` * `load` ÷ replicas, the replicas read every half second from the
  Kubernetes API (the `scale` subresource of its Deployment, with a bearer token);
- while the Unleash flag `EnablePromotion` is on, `promotion_error_ratio` of requests fail
  (500); the flag is read with the Python UnleashClient SDK, as the real carts read it.

`POST /control` sets `load`, `base_ms`, `promotion_error_ratio` and `fixed_ms` (a latency no
scaling helps: the "nothing helps" scenario). `GET /state` tells what it currently does.

    python -m tests.e2e.carts --port P --kube URL --token T --unleash URL --unleash-token T
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import prometheus_client as prom
from aiohttp import web

BUCKETS = tuple(float(b) for b in range(50, 3001, 50))
TICK = 0.05
SCALE_PATH = "/apis/apps/v1/namespaces/sockshop-production/deployments/carts-primary/scale"


def create_app(args: argparse.Namespace) -> web.Application:
    registry = prom.CollectorRegistry()
    latency = prom.Histogram(
        "http_response_time_milliseconds", "Response time.", buckets=BUCKETS, registry=registry
    )
    requests = prom.Counter("http_requests", "Requests.", ["status"], registry=registry)
    state: dict[str, Any] = {
        "load": 1.0,
        "base_ms": 300.0,
        "promotion_error_ratio": 0.3,
        "fixed_ms": 0.0,
        "replicas": 1,
        "promotion": False,
    }
    app = web.Application()

    def latency_ms() -> float:
        if state["fixed_ms"]:
            return float(state["fixed_ms"])
        return float(state["base_ms"]) * float(state["load"]) / max(1, int(state["replicas"]))

    async def background(app: web.Application) -> AsyncIterator[None]:
        from UnleashClient import UnleashClient  # type: ignore[attr-defined]  # not re-exported

        sdk = None
        if args.unleash:
            sdk = UnleashClient(
                url=f"{args.unleash}/api",
                app_name="carts",
                refresh_interval=1,
                custom_headers={"Authorization": args.unleash_token},
                disable_metrics=True,
                disable_registration=True,
                cache_directory=tempfile.mkdtemp(prefix="carts-"),
            )
            await asyncio.to_thread(sdk.initialize_client)

        async def traffic() -> None:
            carry_ok = carry_err = 0.0
            while True:
                error_ratio = state["promotion_error_ratio"] if state["promotion"] else 0.0
                per_tick = 50 * float(state["load"]) * TICK
                carry_err += per_tick * error_ratio
                carry_ok += per_tick * (1 - error_ratio)
                for status, carry in (("500", carry_err), ("200", carry_ok)):
                    whole = int(carry)
                    if whole:
                        requests.labels(status=status).inc(whole)
                        for _ in range(whole):
                            latency.observe(latency_ms())
                carry_err -= int(carry_err)
                carry_ok -= int(carry_ok)
                await asyncio.sleep(TICK)

        async def watch() -> None:
            headers = {"Authorization": f"Bearer {args.token}"}
            async with aiohttp.ClientSession() as session:
                while True:
                    try:
                        async with session.get(f"{args.kube}{SCALE_PATH}", headers=headers) as r:
                            if r.status == 200:
                                state["replicas"] = (await r.json())["spec"]["replicas"]
                    except aiohttp.ClientError:
                        pass
                    if sdk is not None:
                        state["promotion"] = bool(sdk.is_enabled("EnablePromotion"))
                    await asyncio.sleep(0.5)

        tasks = [
            asyncio.create_task(traffic(), name="traffic"),
            asyncio.create_task(watch(), name="watch"),
        ]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if sdk is not None:
            sdk.destroy()

    async def control(request: web.Request) -> web.Response:
        changes = await request.json()
        state.update(
            {
                k: float(v)
                for k, v in changes.items()
                if k in ("load", "base_ms", "promotion_error_ratio", "fixed_ms")
            }
        )
        return web.json_response(state | {"latency_ms": latency_ms()})

    async def current(request: web.Request) -> web.Response:
        return web.json_response(state | {"latency_ms": latency_ms()})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=prom.generate_latest(registry), headers={"Content-Type": prom.CONTENT_TYPE_LATEST}
        )

    app.cleanup_ctx.append(background)
    app.router.add_post("/control", control)
    app.router.add_get("/state", current)
    app.router.add_get("/metrics", metrics)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kube", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--unleash", default="")
    parser.add_argument("--unleash-token", default="")
    args = parser.parse_args()
    web.run_app(create_app(args), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
