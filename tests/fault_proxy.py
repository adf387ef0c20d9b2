"""A reverse proxy in front of a real server (Unleash, an escalation endpoint) that injects
what the real server will not do on demand: an answer of a given status, a request taken
but never passed on, or an answer too slow to wait for.

Contract: every request is forwarded as is (method, path, query, headers, body) and the
upstream answer returned as is, unless a fault matches it first (method and a substring of
the path, consumed in order): `fail(...)` answers `status` with `headers` itself,
`swallow(...)` answers 200 `{}` without forwarding (a write that never happened),
`stall(...)` waits `seconds` before forwarding. `seen` keeps (method, path) of every request.
"""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
from aiohttp import web

_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection"}


@dataclasses.dataclass
class Fault:
    method: str
    path: str
    status: int | None = None  # answer this; None: swallow, or stall
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    stall: float = 0.0


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str]] = []

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.faults += [Fault(method, path, status, dict(headers or {})) for _ in range(times)]

    def swallow(self, method: str, path: str) -> None:
        self.faults.append(Fault(method, path))

    def stall(self, method: str, path: str, seconds: float, *, times: int = 1) -> None:
        self.faults += [Fault(method, path, stall=seconds) for _ in range(times)]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path))
        fault = next(
            (f for f in self.faults if f.method == request.method and f.path in request.path),
            None,
        )
        if fault is not None:
            self.faults.remove(fault)
            if fault.status is not None:
                return web.Response(status=fault.status, text="injected", headers=fault.headers)
            if not fault.stall:
                return web.json_response({})
            await asyncio.sleep(fault.stall)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                data=body,
                headers=headers,
            ) as answer,
        ):
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                content_type=answer.content_type,
            )
