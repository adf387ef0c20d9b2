"""Listening for connections: the limits that keep the process alive when clients are slow,
hostile or too many, and the service's run loop.

aiohttp's own `run_app` has no cap on connections: past the file-descriptor limit accept()
fails and asyncio logs "Too many open files" for every attempt, hundreds of thousands of
lines, while every client waits. Here a connection beyond `server.max_connections` is
answered 503 with `Retry-After` and closed at once; Alertmanager retries it. A connection
that sends no whole request head within `server.idle_timeout` (after it opened or after
its previous answer) is closed; a body that stops arriving is the handler's business
(`server.body_timeout`, 408).

Slots are taken before any credential can be checked, so one client must not take them all:
one source address holds at most `server.max_connections_per_client`, and a connection
none of whose requests carried valid credentials is let go once it has been open for
`server.unauthenticated_timeout` and is idle. A flood of idle or trickling connections from
one address then holds a bounded share for a few seconds at a time, and webhooks from
elsewhere are answered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import http
import logging
import resource
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from aiohttp import web

from receiver import auth, server
from receiver.settings import Settings

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0  # for requests in flight once SIGTERM arrives
_SPARE_FILES = 64  # the journal, log, client sessions, the listening socket itself


class _Handler(web.RequestHandler, auth.Connection):
    """aiohttp's handler, except that a request it cannot parse is answered without quoting
    it (aiohttp puts the raw bytes it choked on into the 400's body, an Authorization header
    included, and Dynatrace shows webhook answers in its UI); and that it keeps to the
    per-client limits of the module docstring."""

    def __init__(self, *args: Any, limits: _ClientLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._client: str | None = None  # its source address, once counted
        self._refused = False
        self._leash: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "-"
        if not self._limits.admit(client):
            self._refused = True
            _Refusal(_Refusal.PER_CLIENT).connection_made(transport)
            return
        self._client = client
        super().connection_made(transport)
        self._leash = self._loop.call_later(self._limits.unauthenticated_timeout, self._vouch)

    def _vouch(self) -> None:
        """Open this long: nobody vouched for it yet, so it goes, now if it is idle (or
        still sending a request head), else once its answer is written."""
        self._leash = None
        if self.authenticated:
            return
        # aiohttp's close() is the graceful one, but on an idle connection it cancels the
        # wait for the next request without closing the socket: idle ones are force-closed.
        # (_request_in_progress is how aiohttp's own shutdown tells them apart.)
        if getattr(self, "_request_in_progress", False):
            self.close()
        else:
            self.force_close()

    # On SIGTERM aiohttp closes every connection (close(), then shutdown()), and from then on
    # drops what arrives on it, the rest of a body in flight included: a webhook still being
    # uploaded waited for its body until server.body_timeout and was answered 408 (found by
    # stopping the image as Kubernetes does). The request in flight gets the rest of its
    # body, and its answer, before the connection goes. (aiohttp's own attributes: its
    # shutdown tells a busy connection from an idle one by _request_in_progress too.)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._close and not self._force_close and getattr(self, "_request_in_progress", False):
            self._close = False  # for this body only: no new request is taken after it
            try:
                super().data_received(data)
            finally:
                self._close = True
            return
        super().data_received(data)

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 - aiohttp's
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or 0.0)
        while getattr(self, "_request_in_progress", False) and loop.time() < deadline:  # noqa: ASYNC110 - aiohttp signals no event
            await asyncio.sleep(0.05)
        await super().shutdown(max(0.0, deadline - loop.time()))

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        if self._leash is not None:
            self._leash.cancel()
        if self._client is not None:
            self._limits.release(self._client)
            self._client = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != http.HTTPStatus.INTERNAL_SERVER_ERROR:
            phrase = http.HTTPStatus(status).phrase if status in _STATUSES else "Error"
            what = type(exc).__name__ if exc is not None else "malformed request"
            message = f"{status} {phrase}: the request is not valid HTTP/1.1 ({what})\n"
        return super().handle_error(request, status, exc, message)


_STATUSES = {status.value for status in http.HTTPStatus}


def _answer_503(text: bytes) -> bytes:
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(text), text)
    )


class _Refusal(asyncio.Protocol):
    """The whole life of a connection beyond a cap: one 503, then closed."""

    ANSWER = _answer_503(b"too many connections open (server.max_connections); retry in a second\n")
    PER_CLIENT = _answer_503(
        b"too many connections open from this address (server.max_connections_per_client);"
        b" retry in a second\n"
    )

    def __init__(self, answer: bytes = ANSWER) -> None:
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        writer = cast(asyncio.WriteTransport, transport)  # uvloop's does not subclass asyncio's
        writer.write(self._answer)
        writer.close()


@dataclasses.dataclass(slots=True)
class _ClientLimits:
    """The connections each source address holds, and what it may."""

    per_client: int
    unauthenticated_timeout: float
    on_refusal: Callable[[], None]
    open: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def admit(self, client: str) -> bool:
        if self.open[client] >= self.per_client:
            self.on_refusal()
            return False
        self.open[client] += 1
        return True

    def release(self, client: str) -> None:
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


class _CappedSite(web.TCPSite):
    """A TCP site that hands connections beyond `max_connections` to `_Refusal`."""

    def __init__(self, runner: web.AppRunner, settings: Settings, app: web.Application) -> None:
        super().__init__(runner, settings.host, settings.port)
        self._settings = settings
        self._app = app

    def protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        manager = self._runner.server
        assert isinstance(manager, web.Server)
        limit = self._settings.max_connections
        refused = self._app[server.METRICS].connections_refused
        shed = self._app[server.SHED]
        loop = asyncio.get_running_loop()

        def refused_per_client() -> None:
            refused.labels(reason="max_connections_per_client").inc()
            shed.shed("max_connections_per_client")

        options: dict[str, Any] = {
            "access_log": None,
            "keepalive_timeout": self._settings.idle_timeout,
            "limits": _ClientLimits(
                per_client=self._settings.max_connections_per_client,
                unauthenticated_timeout=self._settings.unauthenticated_timeout,
                on_refusal=refused_per_client,
            ),
        }

        def make() -> asyncio.Protocol:
            if len(manager.connections) >= limit:
                refused.labels(reason="max_connections").inc()
                shed.shed("max_connections")
                return _Refusal()
            return _Handler(manager, loop=loop, **options)

        return make

    async def start(self) -> None:
        await web.BaseSite.start(self)
        self._server = await asyncio.get_running_loop().create_server(
            self.protocol_factory(),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )


def fit_open_files(max_connections: int) -> int:
    """Raise the soft limit on open files to hold `max_connections` (and spares) when the hard
    limit allows; return how many connections fit, which is less than asked only when it does
    not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - _SPARE_FILES))


async def serve(
    app: web.Application, settings: Settings, *, started: Callable[[str], None] | None = None
) -> None:
    """Serve `app` until cancelled; `started` is told the URL once it listens. In the main
    thread SIGTERM and SIGINT stop it (through the runner)."""
    fitting = fit_open_files(settings.max_connections)
    if fitting < settings.max_connections:
        logger.warning(
            "server.max_connections_lowered",
            extra={
                "asked": settings.max_connections,
                "max_connections": fitting,
                "detail": "the open-file limit (ulimit -n) holds no more",
            },
        )
        settings = dataclasses.replace(settings, max_connections=fitting)
    runner = web.AppRunner(
        app,
        handle_signals=threading.current_thread() is threading.main_thread(),
        access_log=None,
        keepalive_timeout=settings.idle_timeout,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        # As Prometheus and Alertmanager do: SIGHUP reloads the configuration.
        loop.add_signal_handler(signal.SIGHUP, server.request_reload, app)
    try:
        site = _CappedSite(runner, settings, app)
        await site.start()
        logger.info(
            "receiver.listening",
            extra={"url": site.name, "max_connections": settings.max_connections},
        )
        if started is not None:
            started(site.name)
        await asyncio.Event().wait()
    finally:
        if threading.current_thread() is threading.main_thread():
            loop.remove_signal_handler(signal.SIGHUP)
        await runner.cleanup()


def run(
    app: web.Application,
    settings: Settings,
    loop: asyncio.AbstractEventLoop,
    *,
    started: Callable[[str], None] | None = None,
) -> None:
    """Run the service on `loop` until SIGTERM or SIGINT (or its task is cancelled), then
    shut down in order: stop accepting, finish requests in flight, close the engine and the
    journal."""
    asyncio.set_event_loop(loop)
    main = loop.create_task(serve(app, settings, started=started), name="serve")
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        # First `main`, whose `finally` is the orderly part: stop accepting, let requests in
        # flight finish (SHUTDOWN_TIMEOUT), stop the engine, close the journal. Then what
        # is left.
        _cancel(loop, [main])
        _cancel(loop, asyncio.all_tasks(loop))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        logger.info("receiver.stopped")


def _cancel(loop: asyncio.AbstractEventLoop, tasks: Iterable[asyncio.Task[Any]]) -> None:
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
