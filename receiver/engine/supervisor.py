"""Who runs what: one task per unfinished remediation, serialized per service, fed from the
journal's events; scale-backs; leadership.

The HTTP layer only records. The supervisor subscribes to the journal and learns from it
that a remediation was created (run it), a problem was resolved (tell its remediation and
its pending scale-back) or a cancel was requested (tell the remediation). Each running
remediation is one `Running` object: its task and its inbox.

Remediations of one service run one after the other in the order they were created (an
asyncio.Lock wakes its waiters first come, first served); different services run
concurrently. Only the holder of the leadership acts; for one process with SQLite the
leadership is trivially its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from receiver import clock as clocks
from receiver.actions.runner import Actions
from receiver.configtree import ConfigTree
from receiver.engine import leadership
from receiver.engine.driver import Driver, Inbox
from receiver.engine.effects import Effects, SliProviders
from receiver.errors import JournalError
from receiver.journal import (
    ApprovalDecided,
    CancelRequested,
    JournalEvent,
    ProblemResolved,
    RemediationCreated,
    RemediationStore,
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
        tree: ConfigTree,
        settings: Settings,
        sli_providers: SliProviders,
        metrics: Metrics,
        clock: clocks.Clock,
        leader: leadership.Leadership | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._leadership = leader or leadership.Solo()
        self._effects = Effects(
            store=store,
            actions=actions,
            tree=tree,
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

    def reconfigure(self, settings: Settings, tree: ConfigTree) -> None:
        """A reloaded configuration, in force from the next use on: a remediation under way
        keeps its journaled plan, and reads waits, windows and SLO files as they are now."""
        self._settings = settings
        self._effects.reconfigure(settings, tree)
        self._driver.reconfigure(settings)

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe first (nothing committed from now on is missed), then resume every
        unfinished remediation, oldest first, and every scale-back still to come."""
        self._feed = self._store.subscribe()
        await self._leadership.acquire()
        for scale_back in await self._store.scale_backs():
            self._spawn_scale_back(scale_back)
        for remediation in await self._store.unfinished():
            self._spawn(remediation.id, remediation.service)
            logger.info(
                "remediation.resumed",
                extra={
                    "remediation": remediation.id,
                    "phase": remediation.progress.phase.value,
                    "step": remediation.progress.position,
                },
            )
        self._router = asyncio.create_task(self._route(self._feed), name="engine-router")
        if self._settings.problems_stale_after > 0:
            self._expiry = asyncio.create_task(self._expire(), name="engine-expiry")

    async def stop(self) -> None:
        tasks = [
            *(r.task for r in self._running.values() if r.task is not None),
            *(s.task for s in self._scale_backs.values() if s.task is not None),
            *([self._router] if self._router is not None else []),
            *([self._expiry] if self._expiry is not None else []),
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
        self._scale_backs.clear()
        await self._leadership.release()

    # -- what the journal tells it -----------------------------------------------------------

    async def _route(self, feed: asyncio.Queue[JournalEvent]) -> None:
        while True:
            match await feed.get():
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
