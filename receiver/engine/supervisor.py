"""Who runs what: one task per unfinished remediation, serialized per service, fed from the
journal's events; scale-backs; leadership.

The HTTP layer only records. The supervisor subscribes to the journal and learns from it
that a remediation was created (run it), a problem was resolved (tell its remediation and
its pending scale-back) or a cancel was requested (tell the remediation). Each running
remediation is one `Running` object: its task and its inbox.

Remediations of one service run one after the other in the order they were created (an
asyncio.Lock wakes its waiters first come, first served); different services run
concurrently.

Only the leader acts. For one process on its SQLite file the leadership is its own from the
start; replicas on PostgreSQL hold a lease. While it leads, the engine runs every unfinished
remediation, scale-back and expiry; when it loses the lease it stops them all at once (the
journal already refuses their writes) and waits to lead again, while its router keeps
draining the journal's events. A new leader resumes from the journal, as after a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping

from receiver import clock as clocks
from receiver.actions.runner import Actions
from receiver.engine.driver import Driver, Inbox
from receiver.engine.effects import Effects, SliProviders
from receiver.errors import JournalError
from receiver.journal import (
    ApprovalDecided,
    CancelRequested,
    JournalEvent,
    Leadership,
    ProblemResolved,
    RemediationCreated,
    RemediationStore,
    Resync,
    Solo,
)
from receiver.metrics import Metrics
from receiver.models import ServiceRef
from receiver.remediation.model import (
    Approved,
    Cancelled,
    Rejected,
    ScaleBack,
    ScaleBackState,
)
from receiver.settings import Settings
from receiver.slo.evaluation import ServiceSlo

logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class Running:
    """One remediation the engine runs: its task, and the inbox its driver reads."""

    remediation_id: int
    service: ServiceRef
    inbox: Inbox
    task: asyncio.Task[None] | None = None


@dataclasses.dataclass(slots=True)
class PendingScaleBack:
    resolved: asyncio.Event  # every problem of its remediation is closed
    task: asyncio.Task[None] | None = None


class Engine:
    def __init__(
        self,
        *,
        store: RemediationStore,
        actions: Actions,
        slos: Mapping[ServiceRef, ServiceSlo],
        settings: Settings,
        sli_providers: SliProviders,
        metrics: Metrics,
        clock: clocks.Clock,
        leader: Leadership | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._leadership = leader or Solo()
        self._effects = Effects(
            store=store,
            actions=actions,
            slos=slos,
            settings=settings,
            sli_providers=sli_providers,
            metrics=metrics,
            now=clock.now,
        )
        self._driver = Driver(
            store=store,
            effects=self._effects,
            settings=settings,
            metrics=metrics,
            clock=clock,
            scale_back_planned=self._spawn_scale_back,
        )
        self._running: dict[int, Running] = {}
        self._turns: dict[ServiceRef, asyncio.Lock] = {}
        self._scale_backs: dict[int, PendingScaleBack] = {}  # by remediation id
        self._feed: asyncio.Queue[JournalEvent] | None = None
        self._router: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._leading = False
        self._lead: asyncio.Task[None] | None = None

    def reconfigure(self, settings: Settings, slos: Mapping[ServiceRef, ServiceSlo]) -> None:
        """A reloaded configuration, in force from the next use on: a remediation under way
        keeps its journaled plan, and takes waits, windows and SLOs as they are now."""
        self._settings = settings
        self._effects.reconfigure(settings, slos)
        self._driver.reconfigure(settings)

    # -- life cycle --------------------------------------------------------------------------

    @property
    def role(self) -> str:
        return "leader" if self._leading else "follower"

    async def start(self) -> None:
        """Subscribe first (nothing committed from now on is missed); lead if this process
        may (the only one on its journal at once; a replica when it holds the lease), and
        from then on whenever it may again."""
        self._feed = self._store.subscribe()
        self._router = asyncio.create_task(self._route(self._feed), name="engine-router")
        if await self._leadership.acquire(wait=False):
            await self._take_over()
        self._lead = asyncio.create_task(self._follow_and_lead(), name="engine-leadership")

    async def stop(self) -> None:
        tasks = [task for task in (self._lead, self._router) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._step_down(lost=False)
        await self._leadership.release()

    async def _follow_and_lead(self) -> None:
        while True:
            try:
                if not self._leading:
                    await self._leadership.acquire()
                    await self._take_over()
                await self._leadership.lost()
            except JournalError as e:  # could not read what is under way: let go, try again
                logger.warning("engine.take_over_failed", extra={"error": str(e)})
                await self._step_down()
                await self._leadership.release()
                await asyncio.sleep(1.0)
                continue
            await self._step_down()

    async def _take_over(self) -> None:
        """Resume every unfinished remediation, oldest first, and every scale-back still to
        come; expire stale problems from now on."""
        self._leading = True
        self._metrics.leader.set(1)
        self._metrics.leadership_changes.labels(to="leader").inc()
        logger.info("engine.leading")
        for scale_back in await self._store.scale_backs():
            self._spawn_scale_back(scale_back)
        await self._resume()
        if self._settings.problems_stale_after > 0:
            self._expiry = asyncio.create_task(self._expire(), name="engine-expiry")

    async def _resume(self) -> None:
        for remediation in await self._store.unfinished():
            if remediation.id in self._running:
                continue
            self._spawn(remediation.id, remediation.service)
            logger.info(
                "remediation.resumed",
                extra={
                    "remediation": remediation.id,
                    "phase": remediation.progress.phase.value,
                    "step": remediation.progress.position,
                },
            )

    async def _step_down(self, *, lost: bool = True) -> None:
        """Stop acting: every remediation, scale-back and the expiry, at once."""
        tasks = [
            *(r.task for r in self._running.values() if r.task is not None),
            *(s.task for s in self._scale_backs.values() if s.task is not None),
            *([self._expiry] if self._expiry is not None else []),
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
        self._scale_backs.clear()
        self._expiry = None
        self._metrics.remediations_in_progress.set(0)
        if self._leading:
            self._leading = False
            self._metrics.leader.set(0)
            self._metrics.leadership_changes.labels(to="follower").inc()
            if lost:
                logger.warning(
                    "engine.following", extra={"detail": "lost the lease: stopped acting"}
                )

    # -- what the journal tells it -----------------------------------------------------------

    async def _route(self, feed: asyncio.Queue[JournalEvent]) -> None:
        """Events about remediations this process runs; a follower runs none, and only
        drains them."""
        while True:
            event = await feed.get()
            if not self._leading:
                continue
            match event:
                case Resync():  # events may have been missed: what is under way, again
                    await self._resync()
                case RemediationCreated(remediation_id=remediation_id, service=service):
                    self._spawn(remediation_id, service)
                case ProblemResolved(remediation_id=remediation_id, open_left=0, expired=expired):
                    # Every problem it was for is closed: its own and those that joined it.
                    running = self._running.get(remediation_id)
                    if running is not None:
                        running.inbox.put_nowait(
                            self._effects.closed(running.service, expired=expired)
                        )
                    if (pending := self._scale_backs.get(remediation_id)) is not None:
                        pending.resolved.set()
                case CancelRequested(remediation_id=remediation_id):
                    if remediation_id in self._running:
                        self._running[remediation_id].inbox.put_nowait(Cancelled())
                case ApprovalDecided(remediation_id=remediation_id, approved=approved):
                    if remediation_id in self._running:
                        decision = Approved() if approved else Rejected()
                        self._running[remediation_id].inbox.put_nowait(decision)

    async def _resync(self) -> None:
        try:
            await self._resume()
            for running in list(self._running.values()):
                remediation = await self._store.load(running.remediation_id)
                if remediation is not None:
                    await self._driver.stops_found_in_the_journal(remediation, running.inbox)
        except JournalError as e:  # the drivers find what they missed when they reload
            logger.warning("engine.resync_failed", extra={"error": str(e)})

    async def _expire(self) -> None:
        """Close stale problems now and then (what a stopped remediation then does is the
        router's: the journal tells it like a resolve)."""
        stale_after = self._settings.problems_stale_after
        while True:
            try:
                count = await self._store.expire_stale(
                    self._clock.now() - stale_after, stale_after=stale_after
                )
                if count:
                    logger.info("problems.expired", extra={"problems": count})
            except JournalError as e:  # the next round tries again
                logger.warning("problems.expiry_failed", extra={"error": str(e)})
            await self._clock.sleep(min(stale_after / 4, 60.0))

    # -- one remediation ---------------------------------------------------------------------

    def _spawn(self, remediation_id: int, service: ServiceRef) -> None:
        if remediation_id in self._running:
            return
        running = Running(remediation_id, service, asyncio.Queue())
        self._running[remediation_id] = running
        running.task = asyncio.create_task(self._run(running), name=f"remediation-{remediation_id}")
        self._metrics.remediations_in_progress.set(len(self._running))

    async def _run(self, running: Running) -> None:
        try:
            async with self._turns.setdefault(running.service, asyncio.Lock()):
                # Loaded by the driver when its turn came: it may have ended meanwhile.
                await self._driver.run(running.remediation_id, running.inbox)
        finally:
            self._running.pop(running.remediation_id, None)
            self._metrics.remediations_in_progress.set(len(self._running))

    # -- scale-backs -------------------------------------------------------------------------

    def _spawn_scale_back(self, scale_back: ScaleBack) -> None:
        if scale_back.remediation_id in self._scale_backs:
            return
        pending = PendingScaleBack(asyncio.Event())
        self._scale_backs[scale_back.remediation_id] = pending
        pending.task = asyncio.create_task(
            self._scale_back(scale_back, pending.resolved),
            name=f"scale-back-{scale_back.remediation_id}",
        )

    async def _scale_back(self, scale_back: ScaleBack, resolved: asyncio.Event) -> None:
        try:
            if scale_back.state is ScaleBackState.WAITING:
                # Once every problem it was for is resolved or expired, the time has come.
                if await self._store.unresolved_problems(scale_back.remediation_id):
                    await resolved.wait()
                scale_back = dataclasses.replace(
                    scale_back,
                    state=ScaleBackState.DUE,
                    due=self._clock.now() + self._settings.scaling_scale_back_after,
                )
                await self._store.save_scale_back(scale_back)
            assert scale_back.due is not None
            await self._clock.sleep_until(scale_back.due)
            async with self._turns.setdefault(scale_back.service, asyncio.Lock()):
                await self._effects.scale_back(scale_back)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "remediation.scale_back_crashed",
                extra={"remediation": scale_back.remediation_id},
            )
        finally:
            self._scale_backs.pop(scale_back.remediation_id, None)
