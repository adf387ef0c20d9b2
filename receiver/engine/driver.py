"""The one loop that runs a remediation: perform the effect, take the event it produced (or
one from the inbox), let the state machine decide, save, repeat — until Finish.

    effect = resume(plan, progress)
    while effect is not Finish:
        event = inbox event waiting at this safe point, else perform(effect)
        progress, effect = transition(plan, progress, event)
        save(progress)                      # before the next effect runs

A Sleep races the inbox (a resolve or a cancel ends a wait at once); other effects run to
their end, and what arrived meanwhile is taken at the next safe point. Because progress is
saved before every effect, a restart resumes from the last saved progress: a wait for what
remains of it, an action from its journaled checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from receiver import clock as clocks
from receiver.engine.effects import Effects
from receiver.errors import JournalError
from receiver.journal import RemediationStore
from receiver.logs import Bound
from receiver.metrics import Metrics
from receiver.models import ProblemState, RemediationState
from receiver.remediation import machine
from receiver.remediation.model import (
    Act,
    Acted,
    Approved,
    AskApproval,
    Cancelled,
    Dequeue,
    Dequeued,
    Effect,
    Elapsed,
    Escalate,
    Evaluate,
    Event,
    Finish,
    Judged,
    Phase,
    Rejected,
    Remediation,
    Resolved,
    ScaleBack,
    Sleep,
)
from receiver.settings import Settings

logger = logging.getLogger(__name__)

Inbox = asyncio.Queue[Event]
_NOT_STARTED = (RemediationState.PENDING, RemediationState.AWAITING_APPROVAL)
JOURNAL_RETRY, JOURNAL_RETRY_MAX = 1.0, 60.0  # seconds between tries while the journal refuses


class Driver:
    def __init__(
        self,
        *,
        store: RemediationStore,
        effects: Effects,
        settings: Settings,
        metrics: Metrics,
        clock: clocks.Clock,
        scale_back_planned: Callable[[ScaleBack], None],
    ) -> None:
        self._store = store
        self._effects = effects
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._scale_back_planned = scale_back_planned  # once saved: wait for the resolve

    def reconfigure(self, settings: Settings) -> None:
        self._settings = settings

    async def run(self, remediation_id: int, inbox: Inbox) -> None:
        """Drive a remediation, whose turn has come, to its end.

        When the journal cannot take a write (locked, disk full), nothing is lost: every
        effect resumes from the last saved progress, so the driver waits, loads it again
        and goes on from there, for as long as it takes — rather than escalate through a
        journal that could not record the escalation either.
        """
        log = Bound(logger, remediation=remediation_id)
        delay = JOURNAL_RETRY
        remediation: Remediation | None = None
        while True:
            try:
                remediation = await self._store.load(remediation_id)
                if remediation is None or remediation.progress.finished:
                    return
                await self.stops_found_in_the_journal(remediation, inbox)
                await self._loop(remediation, inbox, log)
                return
            except asyncio.CancelledError:
                raise
            except JournalError as e:
                log.warning(
                    "remediation.journal_unavailable", extra={"error": str(e), "retry_in": delay}
                )
                await self._clock.sleep(delay)
                delay = min(delay * 2, JOURNAL_RETRY_MAX)
            except Exception as e:
                # A bug, or a plan this version cannot read, must not strand a problem silently
                # at 3 a.m.: hand it to people, with what went wrong.
                log.exception("remediation.crashed")
                if remediation is not None:
                    await self._give_up(remediation, e, log)
                return

    async def stops_found_in_the_journal(self, remediation: Remediation, inbox: Inbox) -> None:
        """A cancel or a resolve committed while nobody acted on it (the receiver was down,
        it came before this process subscribed, or its transition could not be saved) is in
        the journal: deliver it. A second copy in the inbox is harmless: the first ends it."""
        if remediation.cancel_requested:
            inbox.put_nowait(Cancelled())
        if (
            remediation.approval is not None
            and remediation.progress.phase is Phase.AWAITING_APPROVAL
        ):
            inbox.put_nowait(Approved() if remediation.approval else Rejected())
        if not await self._store.unresolved_problems(remediation.id):  # its own and joined ones
            state = await self._store.problem_state(remediation.problem_id)
            inbox.put_nowait(
                self._effects.closed(remediation.service, expired=state is ProblemState.EXPIRED)
            )

    async def _loop(self, remediation: Remediation, inbox: Inbox, log: Bound) -> None:
        plan, progress = remediation.plan, remediation.progress
        wait = plan.wait or self._settings.remediation_wait
        effect = machine.resume(plan, progress)
        while not isinstance(effect, Finish):
            event = inbox.get_nowait() if not inbox.empty() else None
            if event is None:
                event = await self._perform(effect, remediation, inbox, log)
            acted_at = None
            if isinstance(event, Resolved) and progress.phase is Phase.WAIT:
                acted_at = await self._effects.acted_at(remediation.id, progress.position)
            moved = machine.transition(
                plan,
                progress,
                event,
                now=self._clock.now(),
                wait=wait,
                approval_timeout=self._settings.remediation_approval_timeout,
                acted_at=acted_at,
                min_window=self._settings.remediation_min_evaluation_window,
            )
            scale_back = None
            if moved.progress.state is RemediationState.HEALED:
                scale_back = await self._effects.plan_scale_back(remediation)
            await self._store.save(
                remediation.id, moved.progress, moved.judgement, scale_back=scale_back
            )
            self._observe(remediation, progress.state, moved.progress.state, log)
            if not isinstance(event, Acted):  # an action's end was announced as it ended
                why = moved.progress.reason or str(getattr(event, "why", ""))
                await self._effects.announce(
                    remediation, moved.judgement, moved.progress.state, why
                )
            progress, effect = moved.progress, moved.effect
            if isinstance(event, Judged) and not event.healed:
                log.info(
                    "remediation.not_healed",
                    extra={"step": progress.position - 1, "why": event.why},
                )
            if scale_back is not None:
                self._scale_back_planned(scale_back)
        if progress.finished:
            log.info(
                "remediation.finished",
                extra={
                    "service": str(remediation.service),
                    "state": progress.state.value,
                    "reason": progress.reason,
                },
            )

    async def _perform(
        self, effect: Effect, remediation: Remediation, inbox: Inbox, log: Bound
    ) -> Event:
        match effect:
            case Dequeue():
                last = await self._store.last_ended(remediation.service)
                cooldown = self._settings.remediation_cooldown
                if last is None or cooldown <= 0:
                    return Dequeued()
                return Dequeued(cooldown_until=last + cooldown)
            case Sleep(until=until):
                return await self._sleep(until, inbox)
            case AskApproval(until=until):
                await self._effects.ask_approval(remediation, until, log)
                return await self._sleep(until, inbox)
            case Act(position=position):
                # Reloaded: the steps as journaled now, a checkpoint saved before a restart.
                current = await self._store.load(remediation.id) or remediation
                return await self._effects.act(current, position, log)
            case Evaluate(position=position):
                return await self._effects.judge(remediation, position)
            case Escalate():
                return await self._effects.escalate(remediation, effect)
        raise AssertionError(f"no effect {effect!r}")

    async def _sleep(self, until: float, inbox: Inbox) -> Event:
        """Elapsed at `until`, or the first event of the inbox if one comes sooner."""
        # Until the moment, not for a span computed now: the task begins a little later.
        sleeper = asyncio.ensure_future(self._clock.sleep_until(until))
        getter = asyncio.ensure_future(inbox.get())
        try:
            await asyncio.wait((sleeper, getter), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, getter):
                task.cancel()
            await asyncio.gather(sleeper, getter, return_exceptions=True)
        if getter.done() and not getter.cancelled():
            return getter.result()
        return Elapsed()

    def _observe(
        self,
        remediation: Remediation,
        before: RemediationState,
        after: RemediationState,
        log: Bound,
    ) -> None:
        if before in _NOT_STARTED and after is RemediationState.RUNNING:
            self._metrics.remediations_started.inc()
            log.info(
                "remediation.started",
                extra={"service": str(remediation.service), "rule": remediation.plan.rule},
            )
        if after.finished and not before.finished:
            self._metrics.remediations_finished.labels(state=after.value).inc()

    async def _give_up(self, remediation: Remediation, error: Exception, log: Bound) -> None:
        try:
            current = await self._store.load(remediation.id)
            if current is None or current.progress.phase is Phase.DONE:
                return
            position = await self._store.next_position(remediation.id)
            giving_up = machine.give_up(current.progress, position, error)
            await self._store.save(remediation.id, giving_up.progress)
            assert isinstance(giving_up.effect, Escalate)
            escalated = await self._effects.escalate(current, giving_up.effect)
            wait = current.plan.wait or self._settings.remediation_wait
            done = machine.transition(
                current.plan, giving_up.progress, escalated, now=self._clock.now(), wait=wait
            )
            await self._store.save(remediation.id, done.progress, done.judgement)
            self._observe(current, current.progress.state, done.progress.state, log)
        except Exception:
            log.exception("remediation.give_up_failed")
