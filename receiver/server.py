"""The HTTP service: webhooks in, problems out, health and metrics.

Handlers parse, triage and hand over to the journal; one middleware maps every domain
error to its status code and a JSON body a person can act on, and measures every request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import importlib.metadata
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import prometheus_client as prom
from aiohttp import web

from receiver import auth, configuration, durations, loadshed, openapi, pages, views
from receiver import clock as clocks
from receiver.actions.kubernetes import Kubernetes
from receiver.actions.runner import Actions
from receiver.configuration import Configuration
from receiver.engine import Engine
from receiver.errors import (
    AuthError,
    ConfigError,
    JournalError,
    JournalOverloaded,
    Overloaded,
    PayloadError,
)
from receiver.journal import Journal, open_journal, replica_identity
from receiver.metrics import Metrics
from receiver.models import (
    Notification,
    Outcome,
    ProblemKey,
    ProblemState,
    Recorded,
    RemediationState,
    Source,
)
from receiver.remediation.model import Phase
from receiver.settings import Settings, credentials_missing
from receiver.slo import providers
from receiver.sources import alertmanager, dynatrace, shape

logger = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)  # as the service started: listener, journal, auth
JOURNAL = web.AppKey("journal", Journal)
METRICS = web.AppKey("metrics", Metrics)
CREDENTIALS = web.AppKey("credentials", auth.Credentials)
ACTIONS = web.AppKey("actions", Actions)
ENGINE = web.AppKey("engine", Engine)
CLOCK = web.AppKey("clock", clocks.Clock)
HTTP = web.AppKey("http", aiohttp.ClientSession)
LAG = web.AppKey("lag", loadshed.LoopLag)
SHED = web.AppKey("shed", loadshed.ShedSummary)
REJECTS = web.AppKey("rejects", loadshed.RejectLog)


@dataclasses.dataclass(slots=True)
class Live:
    """The configuration in force, swapped whole by a reload and read at each use (a frozen
    app cannot have its keys replaced once it runs)."""

    configuration: Configuration
    reload_error: str | None = None  # why the last reload was refused, until one succeeds

    @property
    def settings(self) -> Settings:
        return self.configuration.settings


LIVE = web.AppKey("live", Live)
RELOADING = web.AppKey("reloading", asyncio.Lock)
BACKGROUND = web.AppKey("background", set)  # tasks kept referenced until they end

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
VERSION = importlib.metadata.version("selfheal-receiver")
_PROBLEM_STATES = tuple(state.value for state in ProblemState)
_MAX_ID = (1 << 63) - 1  # SQLite's largest integer


class _ClientErrors(logging.Filter):
    """aiohttp logs a malformed request (bare LF line ends, bad headers, a body that is not
    what its Content-Encoding says, a client gone mid-body) at error level with a traceback
    and the raw request — its Authorization header included. That is the client's fault,
    not ours: one warning line, at most one a second, naming the error's type only."""

    def __init__(self) -> None:
        super().__init__()
        self._throttle = loadshed.Throttle(every=1.0)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(
            error,
            aiohttp.http_exceptions.HttpProcessingError
            | web.RequestPayloadError
            | ConnectionResetError,
        ):
            return True
        dropped = self._throttle.passes("bad_request")
        if dropped is None:
            return False
        record.msg, record.args = "http.bad_request", ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        record.__dict__.update(error=type(error).__name__, dropped=dropped)
        return True


def _quiet_client_errors() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientErrors) for f in server_log.filters):
        server_log.addFilter(_ClientErrors())


def create_app(
    config: Configuration,
    *,
    registry: prom.CollectorRegistry | None = None,
    clock: clocks.Clock | None = None,
) -> web.Application:
    _quiet_client_errors()
    settings = config.settings
    credentials = auth.Credentials.from_settings(settings)
    if (missing := credentials_missing(settings)) is not None:
        raise missing
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[_errors_and_metrics]
    )
    app[SETTINGS] = settings
    app[LIVE] = Live(configuration=config)
    app[RELOADING] = asyncio.Lock()
    app[BACKGROUND] = set()
    app[CREDENTIALS] = credentials
    app[METRICS] = Metrics(registry if registry is not None else prom.CollectorRegistry())
    app[CLOCK] = clock if clock is not None else clocks.SystemClock()
    app[LAG] = loadshed.LoopLag()
    app[SHED] = loadshed.ShedSummary()
    app[REJECTS] = loadshed.RejectLog()
    app.cleanup_ctx.append(_lag_context)
    app.cleanup_ctx.append(_journal_context)
    app.cleanup_ctx.append(_retention_context)
    app.cleanup_ctx.append(_actions_context)
    app.cleanup_ctx.append(_engine_context)
    app.cleanup_ctx.append(_watch_context)
    app.router.add_post("/-/reload", _reload_endpoint)
    app.router.add_post("/webhooks/alertmanager", _alertmanager_webhook)
    app.router.add_post("/webhooks/dynatrace", _dynatrace_webhook)
    app.router.add_get("/api/v1/problems", _list_problems)
    app.router.add_get("/api/v1/problems/{key}", _get_problem)
    app.router.add_get("/api/v1/notifications", _list_notifications)
    app.router.add_get("/api/v1/remediations", _list_remediations)
    app.router.add_get("/api/v1/remediations/{id}", _get_remediation)
    app.router.add_post("/api/v1/remediations/{id}/cancel", _cancel_remediation)
    app.router.add_post("/api/v1/remediations/{id}/approve", _approve_remediation)
    app.router.add_post("/api/v1/remediations/{id}/reject", _reject_remediation)
    app.router.add_get("/api/v1/openapi.json", _openapi)
    app.router.add_get("/", _page_index)
    app.router.add_get("/ui/remediations/{id}", _page_remediation)
    app.router.add_get("/ui/{asset:app\\.(?:js|css)}", _page_asset)
    app.router.add_get("/favicon.ico", _no_icon)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


# -- reloading the configuration ---------------------------------------------------------------

# Settings whose use is fixed at start (the socket, the journal, credentials, logging and the
# adapters' connections): a reload takes the rest, and names these when they changed.
_RESTART_ONLY = (
    "server.host",
    "server.port",
    "server.max_connections",
    "server.idle_timeout",
    "server.unauthenticated_timeout",
    "server.watch_config",
    "store.",
    "auth.token",
    "auth.basic_",
    "auth.disabled",
    "log.",
    "unleash.",
    "escalation.",
    "actions.webhooks",
    "kubernetes.service_account_dir",
    "actions.attempts",
    "actions.backoff",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Reloaded:
    errors: list[ConfigError]  # refused as a whole when there is any
    restart_to_apply: list[str]  # settings that changed but take effect after a restart


async def reload(app: web.Application) -> Reloaded:
    """Read the configuration directory again and put it in force, or refuse it whole: the
    old one stays, and why is logged with file and path, counted and shown by /readyz.
    Remediations under way keep the plan they started with."""
    async with app[RELOADING]:
        live, metrics = app[LIVE], app[METRICS]
        loaded = await asyncio.to_thread(configuration.load, live.configuration.root)
        errors = list(loaded.errors)
        if loaded.configuration is None:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            live.reload_error = f"{errors[0]}{more}"
            metrics.config_reload_ok.set(0)
            for error in errors[:20]:
                logger.error(
                    "config.reload_refused",
                    extra={"file": error.file, "path": error.path, "error": error.message},
                )
            return Reloaded(errors=errors, restart_to_apply=[])
        new, started = loaded.configuration, app[SETTINGS]
        unapplied = [
            field.metadata["yaml"]
            for field in dataclasses.fields(Settings)
            if field.metadata["yaml"].startswith(_RESTART_ONLY)
            and getattr(new.settings, field.name) != getattr(started, field.name)
        ]
        live.configuration, live.reload_error = new, None
        app[ENGINE].reconfigure(new.settings, new.slos)
        app[ACTIONS].reconfigure(new.settings, frozenset(new.services()))
        metrics.config_reload_ok.set(1)
        metrics.config_reload_time.set_to_current_time()
        logger.info(
            "config.reloaded",
            extra={
                "services": [str(ref) for ref in new.services()],
                "restart_to_apply": unapplied,
            },
        )
        return Reloaded(errors=[], restart_to_apply=unapplied)


def request_reload(app: web.Application) -> None:
    """Reload in the background (a signal handler cannot wait)."""
    task = asyncio.ensure_future(reload(app))
    app[BACKGROUND].add(task)
    task.add_done_callback(app[BACKGROUND].discard)


async def _watch_context(app: web.Application) -> AsyncIterator[None]:
    interval = app[SETTINGS].watch_config
    task = _start(_watch(app, interval) if interval > 0 else None, "watch-config")
    yield
    await _stop(task)


def _start(work: Coroutine[Any, Any, None] | None, name: str) -> asyncio.Task[None] | None:
    """`work` as a task for as long as the app runs (None: nothing to run)."""
    return asyncio.create_task(work, name=name) if work is not None else None


async def _stop(task: asyncio.Task[None] | None) -> None:
    # Not in a `finally`: when start-up fails, aiohttp closes the contexts begun so far, and
    # a generator being closed cannot wait; the loop's end cancels the task then.
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _watch(app: web.Application, interval: float) -> None:
    """Reload when a file of the configuration directory changed (checked every `interval`)."""
    root = app[LIVE].configuration.root
    seen = await asyncio.to_thread(config_fingerprint, root)
    while True:
        await asyncio.sleep(interval)
        now = await asyncio.to_thread(config_fingerprint, root)
        if now != seen:
            seen = now
            logger.info("config.changed", extra={"directory": str(root)})
            await reload(app)


def config_fingerprint(root: Path) -> frozenset[tuple[str, int, int, int]]:
    """Each YAML file under `root` (through symlinks, as a ConfigMap volume is made) with
    what changes when it is written or swapped."""
    found = set()
    visited: set[str] = set()
    for directory, subdirectories, names in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in visited:  # a link back up the tree: walked already, and no end to it
            subdirectories.clear()
            continue
        visited.add(real)
        for name in names:
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(directory, name)
                with contextlib.suppress(OSError):  # gone between the walk and the stat
                    stat = os.stat(path)
                    found.add((path, stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return frozenset(found)


async def _reload_endpoint(request: web.Request) -> web.Response:
    _authenticate(request)
    reloaded = await reload(request.app)
    if reloaded.errors:
        return _error(
            400,
            "configuration refused; the one in force stays",
            problems=[str(e) for e in reloaded.errors],
        )
    return _answer(
        views.Reloaded(
            reloaded=True,
            services=[str(ref) for ref in request.app[LIVE].configuration.services()],
            restart_to_apply=reloaded.restart_to_apply,
        )
    )


async def _lag_context(app: web.Application) -> AsyncIterator[None]:
    task = _start(app[LAG].run(app[SHED]), "loop-lag")
    yield
    await _stop(task)


async def _journal_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if app[CREDENTIALS].disabled:
        logger.warning(
            "auth.disabled",
            extra={
                "detail": "webhooks and write endpoints accept requests without credentials",
            },
        )
    journal = open_journal(
        settings.store_path,
        synchronous=settings.store_synchronous,
        max_pending=settings.store_max_pending,
        busy_timeout=settings.store_busy_timeout,
        max_queued_per_service=settings.remediation_max_queued_per_service,
        password_file=settings.store_password_file,
        clock=app[CLOCK].now,  # one time for journal and engine: cooldowns compare them
    )
    await journal.open()
    metrics = app[METRICS]
    journal.commit_seconds = metrics.journal_commit_seconds.observe
    metrics.watch_journal(
        open_problems=lambda: journal.open_problems,
        pending=lambda: journal.pending,
        size=lambda: journal.size_bytes,
    )
    app[JOURNAL] = journal
    logger.info(
        "journal.opened",
        extra={
            "store": journal.where,
            "backend": journal.backend,
            "synchronous": settings.store_synchronous,
            "open_problems": journal.open_problems,
        },
    )
    yield
    await journal.close()


async def _retention_context(app: web.Application) -> AsyncIterator[None]:
    retention = app[SETTINGS].store_retention
    task = _start(_retain(app, retention) if retention else None, "retention")
    yield
    await _stop(task)


async def _retain(app: web.Application, retention: float) -> None:
    """Prune what ended more than `retention` ago, at start and then a few times per period
    (at least hourly); intake commits between the journal's small pruning transactions."""
    journal, clock, pruned_total = app[JOURNAL], app[CLOCK], app[METRICS].journal_pruned
    while True:
        try:
            pruned = await journal.prune(clock.now() - retention)
        except JournalError as e:  # the next round tries again
            logger.warning("journal.prune_failed", extra={"error": str(e)})
        else:
            counts = {k: v for k, v in dataclasses.asdict(pruned).items() if v}
            for kind, count in counts.items():
                pruned_total.labels(kind=kind).inc(count)
            if counts:
                logger.info(
                    "journal.pruned",
                    extra={"older_than": durations.format_seconds(retention), **counts},
                )
        await clock.sleep(min(retention / 8, 3600.0))


async def _actions_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    session = aiohttp.ClientSession()
    kubernetes = await Kubernetes.connect(
        service_account_dir=Path(settings.kubernetes_service_account_dir),
        request_timeout=min(settings.action_timeout, 30.0),
        attempts=settings.action_attempts,
        backoff=settings.action_backoff,
    )
    actions = Actions.from_settings(
        settings,
        session=session,
        kubernetes=kubernetes,
        configured=frozenset(app[LIVE].configuration.services()),
    )
    app[HTTP] = session
    app[ACTIONS] = actions
    for action, reason in actions.cannot_run().items():
        logger.warning("actions.unavailable", extra={"action": action, "reason": reason})
    if settings.dry_run:
        logger.warning(
            "actions.dry_run",
            extra={
                "detail": "DRY RUN: every action records what it would change, and changes"
                " nothing (actions.dry_run / RECEIVER_DRY_RUN)"
            },
        )
    yield
    await kubernetes.close()
    await session.close()


async def _engine_context(app: web.Application) -> AsyncIterator[None]:
    settings, session, journal = app[SETTINGS], app[HTTP], app[JOURNAL]
    engine = Engine(
        store=app[JOURNAL],
        actions=app[ACTIONS],
        slos=app[LIVE].configuration.slos,
        settings=settings,
        # The configuration in force when the SLO is judged: a reloaded Prometheus URL counts.
        sli_providers=lambda name: providers.create(name, session, app[LIVE].settings),
        metrics=app[METRICS],
        clock=app[CLOCK],
        leader=journal.leadership(replica_identity(), settings.leadership_lease),
    )
    app[ENGINE] = engine
    await engine.start()
    yield
    await engine.stop()


# -- middleware --------------------------------------------------------------------------------


@web.middleware
async def _errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except PayloadError as e:
        _reject(request, "invalid_payload", f"{e.field}: {e.message}")
        response = _error(400, "invalid payload", field=e.field, detail=e.message)
    except AuthError as e:
        _reject(request, "unauthorized", str(e))
        response = _error(401, "unauthorized", detail=str(e))
        response.headers["WWW-Authenticate"] = request.app[CREDENTIALS].challenge
    except Overloaded as e:
        _reject(request, "loop_lag")
        response = _error(503, "not recorded, retry later", detail=str(e))
        response.headers["Retry-After"] = "1"
    except JournalError as e:
        reason = "overloaded" if isinstance(e, JournalOverloaded) else "journal"
        _reject(request, reason)
        if reason == "journal":  # a fault worth its own line; overload is summarized
            logger.warning("journal.refused", extra={"error": str(e), "path": request.path})
        response = _error(503, "not recorded, retry later", detail=str(e))
        response.headers["Retry-After"] = "1" if isinstance(e, JournalOverloaded) else "5"
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[LIVE].settings.max_body_bytes
        _reject(request, "too_large", f"over {limit} bytes")
        response = _error(413, "body too large", detail=f"the limit is {limit} bytes")
    except web.HTTPException as e:
        if e.status >= 400:
            response = _error(e.status, e.reason)
            for name in ("Allow", "Location"):
                if name in e.headers:
                    response.headers[name] = e.headers[name]
        else:
            raise
    except Exception:
        logger.exception("http.unhandled", extra={"path": request.path})
        response = _error(500, "internal error", detail="see the receiver's log")
    route = request.match_info.route.resource
    request.app[METRICS].request_seconds.labels(
        route=route.canonical if route is not None else "unmatched",
        method=request.method,
        status=str(response.status),
    ).observe(time.perf_counter() - started)
    return response


def _authenticate(request: web.Request) -> None:
    """Raise AuthError unless the request carries valid credentials; mark its connection as
    one that did (the listener gives it the full idle time)."""
    request.app[CREDENTIALS].verify(request.headers.get("Authorization"))
    if isinstance(request.protocol, auth.Connection):
        request.protocol.authenticated = True


def _answer(answer: msgspec.Struct, status: int = 200) -> web.Response:
    """An answer of its type (receiver/views.py: what the OpenAPI document says), encoded."""
    return web.Response(
        body=views.encode(answer), status=status, content_type="application/json", charset="utf-8"
    )


def _error(status: int, error: str, **details: Any) -> web.Response:
    return _answer(views.Error(error=error, **details), status)


def _reject(request: web.Request, reason: str, detail: str | None = None) -> None:
    source = request.match_info.get("source") or request.path.rsplit("/", 1)[-1]
    if request.path.startswith("/webhooks/"):
        request.app[METRICS].rejected.labels(source=source, reason=reason).inc()
        if reason in ("loop_lag", "overloaded"):
            request.app[SHED].shed(reason)
    if detail is not None:
        # A wrong token or payload template is found from here: why and from where, never
        # the credentials or the body; at most a line a second per reason.
        request.app[REJECTS].log(
            reason, path=request.path, remote=request.remote or "-", detail=detail[:300]
        )


# -- webhooks ----------------------------------------------------------------------------------


async def _alertmanager_webhook(request: web.Request) -> web.Response:
    body = await _authenticated_body(request)
    settings = request.app[LIVE].settings
    labels = alertmanager.LabelNames(
        project=settings.labels_project,
        stage=settings.labels_stage,
        service=settings.labels_service,
    )
    notifications = alertmanager.read(body, labels=labels)
    return await _record(request, Source.ALERTMANAGER, body, notifications)


async def _dynatrace_webhook(request: web.Request) -> web.Response:
    body = await _authenticated_body(request)
    notification = dynatrace.parse(shape.decode_json(body))
    return await _record(request, Source.DYNATRACE, body, (notification,))


async def _authenticated_body(request: web.Request) -> bytes:
    lag, max_lag = request.app[LAG].seconds, request.app[LIVE].settings.max_loop_lag
    if lag > max_lag:  # before reading the body: shedding must cost next to nothing
        raise Overloaded(
            f"the receiver runs {lag:.2f} s behind (server.max_loop_lag {max_lag:g} s)"
        )
    _authenticate(request)
    limit = request.app[LIVE].settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    timeout = request.app[LIVE].settings.body_timeout
    try:
        if request.content.is_eof():  # it came with the head, as most do: nothing to wait for
            return await request.read()
        async with asyncio.timeout(timeout):  # a body that stops arriving must not hold on
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            reason=f"the body did not arrive within {timeout:g} s (server.body_timeout)"
        ) from None
    except web.RequestPayloadError:  # not what its Content-Encoding says, or cut short
        encoding = request.headers.get("Content-Encoding", "identity")[:20]
        raise PayloadError(
            "body", f"cannot be read as sent (Content-Encoding {encoding!r})"
        ) from None


async def _record(
    request: web.Request,
    source: Source,
    body: bytes,
    notifications: tuple[Notification, ...],
) -> web.Response:
    app = request.app
    live = app[LIVE].configuration
    decisions = [live.rules.decide(n, settings=live.settings) for n in notifications]
    # Committed once this returns; the engine learns of it from the journal.
    recorded = await app[JOURNAL].record(body, notifications, decisions=decisions, source=source)
    outcomes = collections.Counter(r.outcome for r in recorded)
    for outcome, count in outcomes.items():
        app[METRICS].notified(source.value, outcome.value, count)
    if logger.isEnabledFor(logging.INFO):
        _log_recorded(source, notifications, recorded, outcomes)
    # The Recorded values as they are, encoded in C: a storm answers thousands a second.
    return _answer(views.Recording(recorded=recorded))


def _log_recorded(
    source: Source,
    notifications: tuple[Notification, ...],
    recorded: tuple[Recorded, ...],
    outcomes: collections.Counter[Outcome],
) -> None:
    """One line per webhook, not per alert (a storm is thousands); repeats only, none: they
    arrive every repeat_interval and are not news. The first new one is named."""
    news = next(
        (
            (notification, result)
            for notification, result in zip(notifications, recorded, strict=True)
            if result.outcome is not Outcome.REPEATED
        ),
        None,
    )
    if news is None:
        return
    notification, result = news
    logger.info(
        "webhook.recorded",
        extra={
            "source": source.value,
            "notifications": len(recorded),
            **{outcome.value: count for outcome, count in outcomes.items()},
            "key": result.key,
            "title": notification.title[:200],
            "service": str(notification.service_ref or "-"),
            "outcome": result.outcome.value,
            "reason": result.reason,
        },
    )


# -- reading -----------------------------------------------------------------------------------


def _authorize_read(request: web.Request) -> None:
    if request.app[LIVE].settings.auth_protect_reads:
        _authenticate(request)


def _limit(request: web.Request) -> int:
    return _number(request.query.get("limit", "100"), "limit", low=1, high=1000)


def _number(text: str, field: str, *, low: int, high: int) -> int:
    """A whole number written in ASCII digits within [low, high]; PayloadError otherwise
    (str.isdigit alone admits '²', which int() refuses)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or not (
        low <= int(text) <= high
    ):
        raise PayloadError(field, f"expected a whole number from {low} to {high}, got {text!r}")
    return int(text)


async def _list_problems(request: web.Request) -> web.Response:
    _authorize_read(request)
    state = request.query.get("state")
    if state is not None and state not in _PROBLEM_STATES:
        raise PayloadError("state", f"expected one of {', '.join(_PROBLEM_STATES)}, got {state!r}")
    problems = await request.app[JOURNAL].problems(
        project=request.query.get("project"),
        stage=request.query.get("stage"),
        service=request.query.get("service"),
        state=state,
        limit=_limit(request),
    )
    return _answer(views.of(views.Problems, {"problems": problems}))


async def _get_problem(request: web.Request) -> web.Response:
    _authorize_read(request)
    key = ProblemKey(request.match_info["key"])
    page = _number(request.query.get("notifications", "50"), "notifications", low=1, high=500)
    before = request.query.get("before")
    problem = await request.app[JOURNAL].problem(
        key,
        notifications=page,
        before=None if before is None else _number(before, "before", low=1, high=_MAX_ID),
    )
    if problem is None:
        return _error(404, "no such problem", key=key)
    return _answer(views.of(views.ProblemDetail, problem))


async def _list_notifications(request: web.Request) -> web.Response:
    _authorize_read(request)
    outcome = request.query.get("outcome")
    outcomes = [o.value for o in Outcome]
    if outcome is not None and outcome not in outcomes:
        raise PayloadError("outcome", f"expected one of {', '.join(outcomes)}, got {outcome!r}")
    notifications = await request.app[JOURNAL].notifications(outcome=outcome, limit=_limit(request))
    return _answer(views.of(views.Notifications, {"notifications": notifications}))


_REMEDIATION_STATES = tuple(state.value for state in RemediationState)


async def _list_remediations(request: web.Request) -> web.Response:
    _authorize_read(request)
    state = request.query.get("state")
    if state is not None and state not in _REMEDIATION_STATES:
        raise PayloadError(
            "state", f"expected one of {', '.join(_REMEDIATION_STATES)}, got {state!r}"
        )
    listed = await request.app[JOURNAL].remediations(
        limit=_limit(request),
        state=state,
        project=request.query.get("project"),
        stage=request.query.get("stage"),
        service=request.query.get("service"),
    )
    return _answer(views.of(views.Remediations, {"remediations": listed}))


def _remediation_id(request: web.Request) -> int:
    return _number(request.match_info["id"], "id", low=0, high=_MAX_ID)


async def _timeline(request: web.Request) -> tuple[int, dict[str, Any] | None]:
    """The remediation the path names and its timeline (None: there is no such one)."""
    _authorize_read(request)
    remediation_id = _remediation_id(request)
    return remediation_id, await request.app[JOURNAL].timeline(remediation_id)


async def _get_remediation(request: web.Request) -> web.Response:
    remediation_id, timeline = await _timeline(request)
    if timeline is None:
        return _error(404, "no such remediation", id=remediation_id)
    return _answer(views.of(views.Timeline, timeline))


async def _cancel_remediation(request: web.Request) -> web.Response:
    _authenticate(request)
    remediation_id = _remediation_id(request)
    remediation = await request.app[JOURNAL].request_cancel(remediation_id)
    if remediation is None:
        return _error(404, "no such remediation", id=remediation_id)
    state = remediation.progress.state
    if state.finished:
        return _error(409, "already finished", id=remediation_id, state=state.value)
    logger.info("remediation.cancel_requested", extra={"remediation": remediation_id})
    return _answer(views.CancelTaken(id=remediation_id, cancel_requested=True), 202)


async def _approve_remediation(request: web.Request) -> web.Response:
    return await _decide(request, approved=True)


async def _reject_remediation(request: web.Request) -> web.Response:
    return await _decide(request, approved=False)


async def _decide(request: web.Request, *, approved: bool) -> web.Response:
    """A person's yes or no to a remediation whose rule says `approval: manual`."""
    _authenticate(request)
    remediation_id = _remediation_id(request)
    remediation = await request.app[JOURNAL].decide_approval(remediation_id, approved=approved)
    if remediation is None:
        return _error(404, "no such remediation", id=remediation_id)
    if remediation.progress.phase is not Phase.AWAITING_APPROVAL:
        return _error(
            409,
            "not awaiting approval",
            id=remediation_id,
            state=remediation.progress.state.value,
        )
    if remediation.approval is not None:
        decided = "approved" if remediation.approval else "rejected"
        return _error(409, f"already {decided}", id=remediation_id)
    decision = "approved" if approved else "rejected"
    logger.info(f"remediation.{decision}", extra={"remediation": remediation_id})
    return _answer(views.DecisionTaken(id=remediation_id, decision=decision), 202)


async def _openapi(request: web.Request) -> web.Response:
    settings = request.app[LIVE].settings
    security = openapi.Security(
        disabled=request.app[CREDENTIALS].disabled,
        protect_reads=settings.auth_protect_reads,
        protect_metrics=settings.auth_protect_metrics,
    )
    return web.json_response(openapi.document(VERSION, security))


# -- the web page -------------------------------------------------------------------------------

_PAGE_HEADERS = {
    "Content-Security-Policy": pages.CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def _page_index(request: web.Request) -> web.Response:
    _authorize_read(request)
    journal = request.app[JOURNAL]
    problems = await journal.problems(state=ProblemState.OPEN.value, limit=100)
    remediations = await journal.remediations(limit=50)
    return web.Response(
        text=pages.index(problems, remediations),
        content_type="text/html",
        headers=_PAGE_HEADERS,
    )


async def _page_remediation(request: web.Request) -> web.Response:
    remediation_id, timeline = await _timeline(request)
    if timeline is None:
        return _error(404, "no such remediation", id=remediation_id)
    return web.Response(
        text=pages.remediation(timeline), content_type="text/html", headers=_PAGE_HEADERS
    )


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # browsers ask for it; there is none, and that is fine


async def _page_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    kind = "text/javascript" if name.endswith(".js") else "text/css"
    text = await asyncio.to_thread((pages.ASSETS / name).read_text, encoding="utf-8")
    return web.Response(text=text, content_type=kind, headers=_PAGE_HEADERS)


# -- health ------------------------------------------------------------------------------------


async def _healthz(request: web.Request) -> web.Response:
    return _answer(views.Alive(status="alive"))


async def _readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {"configuration": "loaded"}
    try:
        await request.app[JOURNAL].probe()
        checks["journal"] = "open"
    except JournalError as e:
        checks["journal"] = f"unavailable: {e}"
    ready = all(value in ("loaded", "open") for value in checks.values())
    # Actions that cannot run are reported, not fatal: intake and the other actions still
    # work, and taking the pod out of the Service would only lose notifications.
    cannot_run = request.app[ACTIONS].cannot_run()
    checks["kubernetes"] = request.app[ACTIONS].kubernetes.unavailable or "connected"
    journal = request.app[JOURNAL]
    refused = request.app[LIVE].reload_error
    readiness = views.Readiness(
        status="ready" if ready else "not ready",
        # Every replica takes webhooks and serves reads; the leader runs the remediations.
        role=request.app[ENGINE].role,
        store=views.Store(backend=journal.backend, where=journal.where),
        checks=checks,
        actions_unavailable=cannot_run,
        # Not unready: the configuration in force still works, and leaving the Service would
        # only lose notifications.
        last_reload=f"refused: {refused}" if refused is not None else msgspec.UNSET,
    )
    return _answer(readiness, 200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    if request.app[LIVE].settings.auth_protect_metrics:
        _authenticate(request)
    return web.Response(
        body=request.app[METRICS].render(),
        headers={"Content-Type": prom.CONTENT_TYPE_LATEST},
    )
