"""The baseline for bench/ingest.py: an aiohttp app that reads the body and answers 200."""

import sys

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"recorded": []})


app = web.Application(client_max_size=1 << 20)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


app.router.add_post("/webhooks/alertmanager", accept)
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
