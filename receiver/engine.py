"""The self-healing loop: for each open problem with a matching rule, one remediation.

    for each action in order:  journal "started" → run it → journal the result
        failed → the next action at once
        else wait (rule's `wait`, default 10 min), then evaluate the service's SLO:
            pass / warning → healed;  fail → the next action
            no slo.yaml → resolved by its source meanwhile → healed, still open → next action
    no action left → escalate → escalated

Remediations of one service are serialized (a FIFO lock per service), with a cooldown after
each; different services run concurrently. A RESOLVED notification or a cancel stops a
remediation at the next safe point (before an action, during a wait, before an evaluation).

Every step is journaled before the engine moves on, and a restart resumes every unfinished
remediation where it was: a wait continues for what remains of it; an action whose result
is unknown runs again with its journaled checkpoint (an absolute target), never a second
delta.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from typing import Any

import aiohttp

from receiver import clock as clocks
from receiver import remediations
from receiver.actions.runner import Actions
from receiver.configtree import ConfigTree
from receiver.errors import ActionError, ConfigError
from receiver.journal import Journal
from receiver.metrics import Metrics
from receiver.models import ActionOutcome, Escalate, RemediationState, ServiceRef
from receiver.rules import remediation as rules
from receiver.settings import Settings
from receiver.slo import evaluation, providers, scoring

logger = logging.getLogger(__name__)

RESOLVED, CANCELLED = "resolved", "cancelled"


class Engine:
    def __init__(
        self,
        *,
        journal: Journal,
        actions: Actions,
        tree: ConfigTree,
        settings: Settings,
        http: aiohttp.ClientSession,
        metrics: Metrics,
        clock: clocks.Clock,
    ) -> None:
        self._journal = journal
        self._actions = actions
        self._tree = tree
        self._settings = settings
        self._http = http
        self._metrics = metrics
        self._clock = clock
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stops: dict[int, asyncio.Event] = {}
        self._stop_reasons: dict[int, str] = {}
        self._by_problem: dict[int, int] = {}
        self._locks: dict[ServiceRef, asyncio.Lock] = {}
        self._scale_backs: dict[int, asyncio.Event] = {}  # problem id → its source resolved it
        self._background: dict[int, asyncio.Task[None]] = {}  # scale-backs, by remediation

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every unfinished remediation, oldest first (the per-service order), and
        every scale-back still to come."""
        for rid, pid, ref, scale_back in await remediations.scale_backs(self._journal):
            self._spawn_scale_back(rid, pid, ref, scale_back)
        for remediation in await remediations.unfinished(self._journal):
            self._spawn(remediation.id, remediation.problem_id)
            logger.info(
                "remediation.resumed",
                extra={
                    "remediation": remediation.id,
                    "phase": remediation.phase,
                    "step": remediation.step,
                },
            )

    async def stop(self) -> None:
        tasks = [*self._tasks.values(), *self._background.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._background.clear()

    # -- what the HTTP layer tells it --------------------------------------------------------

    def started(self, remediation_id: int, problem_id: int) -> None:
        """A remediation was committed with its problem: run it."""
        self._spawn(remediation_id, problem_id)

    def resolved(self, problem_id: int) -> None:
        """The source resolved a problem: its remediation stops at the next safe point."""
        if problem_id in self._scale_backs:
            self._scale_backs[problem_id].set()
        remediation_id = self._by_problem.get(problem_id)
        if remediation_id is not None:
            self._signal(remediation_id, RESOLVED)

    async def cancel(self, remediation_id: int) -> RemediationState | None:
        """Stop a remediation by hand; its state before (None: there is no such one)."""
        state = await remediations.request_cancel(self._journal, remediation_id)
        if state is not None and not state.finished:
            self._signal(remediation_id, CANCELLED)
        return state

    def _signal(self, remediation_id: int, reason: str) -> None:
        event = self._stops.get(remediation_id)
        if event is not None:
            self._stop_reasons.setdefault(remediation_id, reason)
            event.set()

    def _spawn(self, remediation_id: int, problem_id: int) -> None:
        if remediation_id in self._tasks:
            return
        self._stops[remediation_id] = asyncio.Event()
        self._by_problem[problem_id] = remediation_id
        task = asyncio.create_task(self._run(remediation_id), name=f"remediation-{remediation_id}")
        self._tasks[remediation_id] = task
        self._metrics.remediations_in_progress.set(len(self._tasks))

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.pop(remediation_id, None)
            self._stops.pop(remediation_id, None)
            self._stop_reasons.pop(remediation_id, None)
            self._by_problem.pop(problem_id, None)
            self._metrics.remediations_in_progress.set(len(self._tasks))

        task.add_done_callback(done)

    # -- one remediation ---------------------------------------------------------------------

    async def _run(self, remediation_id: int) -> None:
        try:
            remediation = await remediations.load(self._journal, remediation_id)
            if remediation is None:
                return
            lock = self._locks.setdefault(remediation.service, asyncio.Lock())
            async with lock:
                # Reloaded under the lock: it may have been cancelled while it queued.
                current = await remediations.load(self._journal, remediation_id)
                if current is not None and not current.state.finished:
                    await self._drive(current)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # A bug (or a journal written by another version) must not strand a problem
            # silently at 3 a.m.: hand it to people, with what went wrong.
            logger.exception("remediation.crashed", extra={"remediation": remediation_id})
            await self._give_up(remediation_id, e)

    async def _give_up(self, remediation_id: int, error: Exception) -> None:
        try:
            r = await remediations.load(self._journal, remediation_id)
            if r is None or r.state.finished:
                return
            position = await remediations.next_position(self._journal, r.id)
            await self._escalate(
                r,
                position,
                f"the receiver failed ({type(error).__name__}: {error})",
                "escalate",
                dry_run=False,
            )
        except Exception:
            logger.exception("remediation.give_up_failed", extra={"remediation": remediation_id})

    async def _drive(self, r: remediations.Remediation) -> None:
        stop = self._stops[r.id]
        if r.cancel_requested:
            self._stop_reasons.setdefault(r.id, CANCELLED)
            stop.set()
        if r.state is RemediationState.PENDING and not await self._begin(r, stop):
            return
        plan = r.plan
        wait = plan.get("wait") or self._settings.remediation_wait
        window = plan.get("evaluation_window") or self._settings.remediation_evaluation_window
        dry_run = bool(plan.get("dry_run"))
        entries = plan["actions"]
        position, phase, until = r.step, r.phase, r.phase_until
        step = r.steps.get(position)
        while position < len(entries):
            entry = entries[position]
            if phase in ("queued", "cooldown", "action"):
                if stop.is_set():
                    await self._stopped(r, position, done=position, has_slo=None)
                    return
                kind = rules.action(entry["action"], entry["value"])
                if isinstance(kind, Escalate):
                    await self._escalate(
                        r, position, "the rule escalates here", entry["action"], dry_run=dry_run
                    )
                    return
                succeeded = await self._act(r, position, entry, kind, step, dry_run=dry_run)
                if not succeeded:
                    position, phase, step = position + 1, "action", None
                    continue
                until = self._clock.now() + wait
                await remediations.update(self._journal, r.id, phase="wait", phase_until=until)
                phase = "wait"
            if phase == "wait":
                assert until is not None
                interrupted = await clocks.sleep_unless(
                    self._clock, until - self._clock.now(), stop
                )
                if interrupted:
                    await self._stopped(
                        r,
                        position,
                        done=position + 1,
                        has_slo=self._tree.slo_file(r.service) is not None,
                    )
                    return
                await remediations.update(self._journal, r.id, phase="evaluate")
                phase = "evaluate"
            if phase == "evaluate":
                if stop.is_set():
                    await self._stopped(
                        r,
                        position,
                        done=position + 1,
                        has_slo=self._tree.slo_file(r.service) is not None,
                    )
                    return
                healed, why = await self._judge(r, position, window)
                await remediations.set_verdict(
                    self._journal, r.id, position, "healed" if healed else "next"
                )
                if healed:
                    await self._end(
                        r,
                        RemediationState.HEALED,
                        f"{entry['action']} (step {position + 1}) healed it: {why}",
                    )
                    return
                logger.info(
                    "remediation.not_healed",
                    extra={
                        "remediation": r.id,
                        "step": position,
                        "why": why,
                    },
                )
                position, phase, step = position + 1, "action", None
                await remediations.update(self._journal, r.id, step=position, phase="action")
        await self._escalate(r, position, "no action healed it", "escalate", dry_run=dry_run)

    async def _begin(self, r: remediations.Remediation, stop: asyncio.Event) -> bool:
        """Cooldown, then start if the problem is still open; False if it ended instead."""
        cooldown = self._settings.remediation_cooldown
        last = await remediations.last_ended(self._journal, r.service)
        if last is not None and cooldown > 0:
            until = last + cooldown
            if until > self._clock.now():
                await remediations.update(self._journal, r.id, phase="cooldown", phase_until=until)
                await clocks.sleep_unless(self._clock, until - self._clock.now(), stop)
        problem = await remediations.problem(self._journal, r.problem_id)
        if self._stop_reasons.get(r.id) == CANCELLED:
            await self._end(r, RemediationState.CANCELLED, "cancelled before it began")
            return False
        if problem["state"] == "resolved":
            await self._end(
                r, RemediationState.RESOLVED, "resolved by its source before the remediation began"
            )
            return False
        await remediations.update(
            self._journal, r.id, state=RemediationState.RUNNING, phase="action", started_at=True
        )
        self._metrics.remediations_started.inc()
        logger.info(
            "remediation.started",
            extra={
                "remediation": r.id,
                "service": str(r.service),
                "rule": r.plan.get("rule"),
                "title": problem["title"],
            },
        )
        return True

    async def _act(
        self,
        r: remediations.Remediation,
        position: int,
        entry: dict[str, Any],
        kind: Any,
        step: remediations.Step | None,
        *,
        dry_run: bool,
    ) -> bool:
        """Run one action, journaled before and after; True if it succeeded."""
        if step is not None and step.result != "started":  # finished before a restart
            return step.result == "succeeded"
        await remediations.start_step(
            self._journal, r.id, position, entry["action"], entry["value"]
        )

        async def save(checkpoint: dict[str, Any]) -> None:
            await remediations.save_checkpoint(self._journal, r.id, position, checkpoint)

        started = time.perf_counter()
        result, detail, data = await _step_result(
            self._actions.run(
                kind,
                r.service,
                dry_run=dry_run,
                save=save,
                checkpoint=step.checkpoint if step is not None else None,
            )
        )
        self._metrics.action_seconds.labels(action=entry["action"], result=result).observe(
            time.perf_counter() - started
        )
        await remediations.finish_step(
            self._journal, r.id, position, result=result, detail=detail, data=data
        )
        if result == "failed":
            await remediations.set_verdict(self._journal, r.id, position, "next")
            await remediations.update(self._journal, r.id, step=position + 1, phase="action")
        logger.info(
            f"remediation.action_{result}",
            extra={
                "remediation": r.id,
                "step": position,
                "action": entry["action"],
                "detail": detail,
            },
        )
        return result == "succeeded"

    async def _judge(
        self, r: remediations.Remediation, position: int, window: float
    ) -> tuple[bool, str]:
        """Healed? Decided by the SLO, or without one by the problem's own state."""
        try:
            service_slo = evaluation.load(
                self._tree, r.service, default_provider=self._settings.sli_provider
            )
        except ConfigError as e:
            return False, f"the SLO cannot be evaluated: {e}"
        if service_slo is None:
            problem = await remediations.problem(self._journal, r.problem_id)
            if problem["state"] == "resolved":
                return True, "no slo.yaml; the source resolved the problem"
            return False, "no slo.yaml; the problem is still open"
        comparison = service_slo.slo.comparison
        admitted = [
            x for x in ("pass", "warning", "fail") if comparison.include_result_with_score.admits(x)
        ]
        history = await self._journal.previous_evaluations(
            r.service, results=admitted, limit=comparison.previous_count
        )
        provider = providers.create(service_slo.provider, self._http, self._settings)
        end = self._clock.now()
        measured, result = await evaluation.evaluate(
            service_slo,
            provider,
            end=end,
            window=window,
            deployment=self._settings.sli_deployment,
            previous=[scoring.Previous(result=x, values=v) for x, v in history],
        )
        detail = result.to_json() | {"reasons": measured.reasons}
        await self._journal.record_evaluation(
            r.service,
            window_start=end - window,
            window_end=end,
            result=result.result,
            score=result.score,
            values=result.values(),
            detail=detail,
            remediation_id=r.id,
            step=position,
        )
        self._metrics.evaluations.labels(result=result.result).inc()
        why = f"SLO {result.result}, score {result.score:.1f}"
        return result.result in ("pass", "warning"), why

    async def _stopped(
        self, r: remediations.Remediation, position: int, *, done: int, has_slo: bool | None
    ) -> None:
        """End a remediation stopped at a safe point: `done` actions ran; `has_slo` is None
        when it stopped before an action, with nothing to judge."""
        reason = self._stop_reasons.get(r.id)
        if reason is None:  # resumed after a restart: ask the journal why
            current = await remediations.load(self._journal, r.id)
            reason = CANCELLED if current and current.cancel_requested else RESOLVED
        steps = f"after {done} action{'s' if done != 1 else ''}" if done else "before any action"
        if reason == CANCELLED:
            await self._end(r, RemediationState.CANCELLED, f"cancelled by hand {steps}")
        elif has_slo is False and done:
            # Without an SLO, the source resolving the problem after an action is the verdict.
            await remediations.set_verdict(self._journal, r.id, position, "healed")
            await self._end(
                r, RemediationState.HEALED, f"no slo.yaml; the source resolved the problem {steps}"
            )
        else:
            if has_slo is not None:  # stopped while waiting to judge the action at `position`
                await remediations.set_verdict(self._journal, r.id, position, "resolved")
            await self._end(r, RemediationState.RESOLVED, f"resolved by its source {steps}")

    async def _escalate(
        self, r: remediations.Remediation, position: int, why: str, action: str, *, dry_run: bool
    ) -> None:
        await remediations.start_step(self._journal, r.id, position, action, None)
        document = await self._escalation_document(r, why)
        result, detail, data = await _step_result(
            self._actions.run(Escalate(), r.service, dry_run=dry_run, document=document)
        )
        await remediations.finish_step(
            self._journal, r.id, position, result=result, detail=detail, data=data
        )
        await remediations.set_verdict(self._journal, r.id, position, "escalated")
        delivered = (
            "escalation delivered" if result == "succeeded" else f"escalation failed: {detail}"
        )
        await self._end(r, RemediationState.ESCALATED, f"{why}; {delivered}")

    async def _escalation_document(self, r: remediations.Remediation, why: str) -> dict[str, Any]:
        timeline = await remediations.timeline(self._journal, r.id) or {}
        steps = [s for s in timeline.get("steps", []) if s["result"] != "started"]
        evaluations = [s["evaluation"] for s in steps if s.get("evaluation")]
        return {
            "problem": {
                "key": timeline.get("problem_key"),
                "title": timeline.get("title"),
                "source": timeline.get("source"),
                "state": timeline.get("problem_state"),
                "project": r.service.project,
                "stage": r.service.stage,
                "service": r.service.service,
            },
            "remediation": r.id,
            "rule": r.plan.get("rule"),
            "reason": why,
            "steps": [
                {
                    k: s[k]
                    for k in (
                        "action",
                        "input",
                        "result",
                        "detail",
                        "verdict",
                        "started_at",
                        "ended_at",
                    )
                }
                for s in steps
            ],
            "evaluation": evaluations[-1] if evaluations else None,
        }

    async def _end(self, r: remediations.Remediation, state: RemediationState, reason: str) -> None:
        scale_back = await self._plan_scale_back(r) if state is RemediationState.HEALED else None
        await remediations.update(
            self._journal,
            r.id,
            state=state,
            phase="done",
            ended_at=True,
            reason=reason,
            scale_back=json.dumps(scale_back) if scale_back else None,
        )
        if scale_back:
            self._spawn_scale_back(r.id, r.problem_id, r.service, scale_back)
        self._metrics.remediations_finished.labels(state=state.value).inc()
        logger.info(
            "remediation.finished",
            extra={
                "remediation": r.id,
                "service": str(r.service),
                "state": state.value,
                "reason": reason,
            },
        )

    # -- scale-back after a healed problem is resolved (Keptn never scaled back) -------------

    async def _plan_scale_back(self, r: remediations.Remediation) -> dict[str, Any] | None:
        delay = self._settings.scaling_scale_back_after
        if delay <= 0:
            return None
        timeline = await remediations.timeline(self._journal, r.id) or {}
        scalings = [
            s.get("data") or {}
            for s in timeline.get("steps", [])
            if s["action"] == "scaling"
            and s["result"] == "succeeded"
            and (s.get("data") or {}).get("kind") == "scale"
        ]
        if not scalings:
            return None
        first, last = scalings[0], scalings[-1]
        return {
            "state": "waiting",
            "due": None,
            "namespace": last["namespace"],
            "deployment": last["deployment"],
            "original": first["before"],
            "scaled_to": last["target"],
        }

    def _spawn_scale_back(
        self, remediation_id: int, problem_id: int, ref: ServiceRef, scale_back: dict[str, Any]
    ) -> None:
        self._scale_backs.setdefault(problem_id, asyncio.Event())
        task = asyncio.create_task(
            self._scale_back(remediation_id, problem_id, ref, scale_back),
            name=f"scale-back-{remediation_id}",
        )
        self._background[remediation_id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._background.pop(remediation_id, None)
            self._scale_backs.pop(problem_id, None)

        task.add_done_callback(done)

    async def _scale_back(
        self, remediation_id: int, problem_id: int, ref: ServiceRef, scale_back: dict[str, Any]
    ) -> None:
        try:
            if scale_back["state"] == "waiting":
                problem = await remediations.problem(self._journal, problem_id)
                if problem["state"] != "resolved":
                    await self._scale_backs[problem_id].wait()
                scale_back |= {
                    "state": "due",
                    "due": self._clock.now() + self._settings.scaling_scale_back_after,
                }
                await remediations.update(
                    self._journal, remediation_id, scale_back=json.dumps(scale_back)
                )
            await self._clock.sleep(scale_back["due"] - self._clock.now())
            async with self._locks.setdefault(ref, asyncio.Lock()):
                await self._do_scale_back(remediation_id, scale_back)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "remediation.scale_back_crashed", extra={"remediation": remediation_id}
            )

    async def _do_scale_back(self, remediation_id: int, scale_back: dict[str, Any]) -> None:
        position = await remediations.next_position(self._journal, remediation_id)
        await remediations.start_step(
            self._journal, remediation_id, position, "scale-back", scale_back["original"]
        )
        try:
            _, current = await self._actions.kubernetes.read_replicas(
                scale_back["namespace"], (scale_back["deployment"],)
            )
            if current != scale_back["scaled_to"]:
                result, detail = (
                    "failed",
                    (
                        f"skipped: {scale_back['deployment']} has {current} replicas, not the "
                        f"{scale_back['scaled_to']} this remediation set; someone else scaled it"
                    ),
                )
            else:
                outcome = await self._actions.scale_to(scale_back, scale_back["original"])
                result, detail = "succeeded", outcome.detail
        except ActionError as e:
            result, detail = "failed", str(e)
        await remediations.finish_step(
            self._journal, remediation_id, position, result=result, detail=detail, data={}
        )
        await remediations.update(
            self._journal, remediation_id, scale_back=json.dumps(scale_back | {"state": "done"})
        )
        logger.info(
            "remediation.scaled_back",
            extra={
                "remediation": remediation_id,
                "result": result,
                "detail": detail,
            },
        )


async def _step_result(
    action: Coroutine[Any, Any, ActionOutcome],
) -> tuple[str, str, dict[str, Any]]:
    """(result, detail, data) of an action, as a step records it; an ActionError is a failed
    step, never a crash of the remediation."""
    try:
        outcome = await action
    except ActionError as e:
        return "failed", str(e), {"error": type(e).__name__}
    return "succeeded", outcome.detail, outcome.data
