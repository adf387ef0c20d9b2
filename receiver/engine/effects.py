"""What a remediation's effects do in the world: run an action, judge by the SLO, escalate,
scale back. Each journals what it does and returns the event the state machine takes next;
an action's failure is an event (Acted(succeeded=False)), never an exception.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from receiver import durations
from receiver.actions.runner import Actions
from receiver.clock import iso
from receiver.engine import announcements
from receiver.errors import ActionError
from receiver.journal import RemediationStore
from receiver.logs import Bound
from receiver.metrics import Metrics
from receiver.models import ActionOutcome, Custom, RemediationState, ServiceRef
from receiver.models import Escalate as EscalateAction
from receiver.remediation.model import (
    Acted,
    Escalate,
    Escalated,
    Expired,
    Judged,
    Judgement,
    Remediation,
    Resolved,
    ScaleBack,
    ScaleBackState,
    StepResult,
    Undecided,
)
from receiver.rules import remediation as rules
from receiver.settings import Settings
from receiver.slo import evaluation, providers, scoring

logger = logging.getLogger(__name__)

SliProviders = Callable[[str], providers.Provider]
"""The SLI provider of a name (prometheus, dynatrace), as configured."""


class Effects:
    def __init__(
        self,
        *,
        store: RemediationStore,
        actions: Actions,
        slos: Mapping[ServiceRef, evaluation.ServiceSlo],
        settings: Settings,
        sli_providers: SliProviders,
        metrics: Metrics,
        now: Callable[[], float],
    ) -> None:
        self._store = store
        self._actions = actions
        self._slos = slos
        self._settings = settings
        self._sli_providers = sli_providers
        self._metrics = metrics
        self._now = now

    def reconfigure(
        self, settings: Settings, slos: Mapping[ServiceRef, evaluation.ServiceSlo]
    ) -> None:
        self._settings, self._slos = settings, slos

    def closed(self, service: ServiceRef, *, expired: bool) -> Resolved | Expired:
        """The event for a remediation whose problems are all closed: resolved by their
        source (judged without an SLO when the service has no slo.yaml), or expired."""
        if expired:
            return Expired()
        return Resolved(has_slo=service in self._slos)

    async def act(self, remediation: Remediation, position: int, log: Bound) -> Acted:
        """Run the plan's action at `position`, journaled before and after. A step that
        finished before a restart is not run again; one that started resumes from its
        checkpoint (an absolute target), never as a second delta."""
        planned = remediation.plan.actions[position]
        kind = rules.action(planned.action, planned.value)  # ValueError: a plan it cannot read
        step = remediation.steps.get(position)
        if step is not None and step.result is not StepResult.STARTED:
            return Acted(succeeded=step.result is StepResult.SUCCEEDED)
        await self._store.start_step(remediation.id, position, planned.action, planned.value)
        await announcements.action_started(
            self._actions, remediation, position, action=planned.action, value=planned.value
        )

        async def save(checkpoint: dict[str, Any]) -> None:
            await self._store.save_checkpoint(remediation.id, position, checkpoint)

        document = None
        if isinstance(kind, Custom):  # run as an HTTP POST: what it is for goes along
            document = {
                "action": planned.action,
                "value": planned.value,
                "remediation": remediation.id,
                "step": position,
                "rule": remediation.plan.rule,
                "problem": await self._problem(remediation),
                "idempotency_key": f"selfheal-{remediation.id}-{position}",
            }
        started = time.perf_counter()
        result, detail, data = await _outcome(
            self._actions.run(
                kind,
                remediation.service,
                dry_run=remediation.plan.dry_run,
                save=save,
                checkpoint=step.checkpoint if step is not None else None,
                document=document,
            )
        )
        self._metrics.action_seconds.labels(action=planned.action, result=result.value).observe(
            time.perf_counter() - started
        )
        await self._store.finish_step(
            remediation.id, position, result=result, detail=detail, data=data
        )
        await announcements.action_ended(
            self._actions,
            remediation,
            position,
            action=planned.action,
            result=result,
            detail=detail,
        )
        log.info(
            f"remediation.action_{result.value}",
            extra={"step": position, "action": planned.action, "detail": detail},
        )
        return Acted(succeeded=result is StepResult.SUCCEEDED)

    async def acted_at(self, remediation_id: int, position: int) -> float | None:
        """When the action at `position` finished (None: it has not, or before 0.2)."""
        remediation = await self._store.load(remediation_id)
        step = remediation.steps.get(position) if remediation is not None else None
        return step.ended_at if step is not None else None

    async def judge(self, remediation: Remediation, position: int) -> Judged | Undecided:
        """Healed? Decided by the SLO over the time since the action (at most the evaluation
        window), or without one by whether every problem it is for (its own and those that
        joined it) is resolved. When the SLO cannot say (an SLI without a value) and every
        problem is resolved, the source's word decides (Undecided)."""
        service = remediation.service
        service_slo = self._slos.get(service)  # as the configuration in force has it
        if service_slo is None:
            if not await self._store.unresolved_problems(remediation.id):
                return Judged(healed=True, why="no slo.yaml; the source resolved the problem")
            return Judged(healed=False, why="no slo.yaml; the problem is still open")
        comparison = service_slo.slo.comparison
        admitted = [
            x for x in ("pass", "warning", "fail") if comparison.include_result_with_score.admits(x)
        ]
        history = await self._store.previous_evaluations(
            service, results=admitted, limit=comparison.previous_count
        )
        window = remediation.plan.evaluation_window or self._settings.remediation_evaluation_window
        end = self._now()
        acted_at = await self.acted_at(remediation.id, position)
        if acted_at is not None and 0 < end - acted_at < window:
            window = end - acted_at  # what came before the action says nothing of it
        measured, result = await evaluation.evaluate(
            service_slo,
            self._sli_providers(service_slo.provider),
            end=end,
            window=window,
            deployment=self._settings.sli_deployment,
            previous=[scoring.Previous(result=x, values=v) for x, v in history],
            problem_open=lambda: self._problem_open(remediation),
        )
        await self._store.record_evaluation(
            service,
            window_start=end - window,
            window_end=end,
            result=result.result,
            score=result.score,
            values=result.values(),
            detail=result.to_json() | {"reasons": measured.reasons},
            remediation_id=remediation.id,
            step=position,
        )
        self._metrics.evaluations.labels(result=result.result).inc()
        why = f"SLO {result.result}, score {result.score:.1f}"
        healed = result.result in ("pass", "warning")
        if (
            not healed
            and measured.reasons
            and not await self._store.unresolved_problems(remediation.id)
        ):
            missing = "; ".join(f"{name}: {reason}" for name, reason in measured.reasons.items())
            return Undecided(
                why=f"{why} over {durations.format_seconds(window)}, no value for {missing}"
            )
        return Judged(healed=healed, why=why)

    async def announce(
        self,
        remediation: Remediation,
        judgement: Judgement | None,
        state: RemediationState,
        why: str,
    ) -> None:
        """The Kubernetes Event of a verdict on a step, or of the end it came to without one."""
        if judgement is not None:
            await announcements.verdict(
                self._actions, remediation, judgement.position, judgement.verdict, why
            )
        elif state.finished:
            await announcements.ended(self._actions, remediation, state, why)

    async def _problem_open(self, remediation: Remediation) -> float:
        """Keptn's `problem_open`: 1 while a problem the remediation is for is open."""
        return 1.0 if await self._store.unresolved_problems(remediation.id) else 0.0

    async def escalate(self, remediation: Remediation, escalation: Escalate) -> Escalated:
        """Deliver the escalation document as the step at `escalation.position`."""
        await self._store.start_step(remediation.id, escalation.position, escalation.action, None)
        document = await self._escalation_document(remediation, escalation.why)
        result, detail, data = await self._deliver(remediation, document)
        await self._store.finish_step(
            remediation.id, escalation.position, result=result, detail=detail, data=data
        )
        dry_run = bool(data and data.get("dry_run"))
        return Escalated(
            why=escalation.why,
            delivered=result is StepResult.SUCCEEDED and not dry_run,
            detail=detail,
            dry_run=dry_run,
        )

    async def ask_approval(self, remediation: Remediation, until: float, log: Bound) -> None:
        """Tell the escalation targets that a remediation waits for a person (best effort:
        the API, `receiver approve` and the log say so whether or not this arrives)."""
        path = f"/api/v1/remediations/{remediation.id}"
        base = self._settings.public_url.rstrip("/")
        document = {
            "problem": await self._problem(remediation),
            "remediation": remediation.id,
            "rule": remediation.plan.rule,
            "reason": "awaiting approval",
            "approval": {
                "actions": [a.action for a in remediation.plan.actions],
                "until": iso(until),
                "approve": f"POST {base}{path}/approve",
                "reject": f"POST {base}{path}/reject",
                "cli": f"receiver approve {remediation.id}",
            },
            "steps": [],
            "url": f"{base}{path}" if base else None,
        }
        log.info(
            "remediation.awaiting_approval",
            extra={"rule": remediation.plan.rule, "until": iso(until)},
        )
        if not self._actions.escalation.configured:
            return
        result, detail, _ = await self._deliver(remediation, document)
        if result is not StepResult.SUCCEEDED:
            log.warning("remediation.approval_request_failed", extra={"detail": detail})

    async def _deliver(
        self, remediation: Remediation, document: dict[str, Any]
    ) -> tuple[StepResult, str, dict[str, Any]]:
        """`document` to the escalation targets (in a dry run, nothing is sent)."""
        return await _outcome(
            self._actions.run(
                EscalateAction(),
                remediation.service,
                dry_run=remediation.plan.dry_run,
                document=document,
            )
        )

    async def _problem(self, remediation: Remediation) -> dict[str, Any]:
        timeline = await self._store.timeline(remediation.id) or {}
        return _problem_of(remediation, timeline)

    async def _escalation_document(self, remediation: Remediation, why: str) -> dict[str, Any]:
        timeline = await self._store.timeline(remediation.id) or {}
        steps = [s for s in timeline.get("steps", []) if s["result"] != StepResult.STARTED]
        evaluations = [s["evaluation"] for s in steps if s.get("evaluation")]
        fields = ("action", "input", "result", "detail", "verdict", "started_at", "ended_at")
        return {
            "problem": _problem_of(remediation, timeline),
            "remediation": remediation.id,
            "rule": remediation.plan.rule,
            "reason": why,
            "steps": [{name: step[name] for name in fields} for step in steps],
            "evaluation": evaluations[-1] if evaluations else None,
        }

    # -- scale-back once a healed remediation's problems are resolved (Keptn never did) -----

    async def plan_scale_back(self, remediation: Remediation) -> ScaleBack | None:
        """What to take back once its problems are resolved: the replicas its scaling
        steps added (None: scale-back is off, or nothing was scaled)."""
        if self._settings.scaling_scale_back_after <= 0:
            return None
        timeline = await self._store.timeline(remediation.id) or {}
        scalings = [
            step.get("data") or {}
            for step in timeline.get("steps", [])
            if step["action"] == "scaling"
            and step["result"] == StepResult.SUCCEEDED
            and (step.get("data") or {}).get("kind") in ("scale", "autoscaler")
        ]
        if not scalings:
            return None
        last = scalings[-1]
        first = next(s for s in scalings if s["kind"] == last["kind"])  # the same thing scaled
        return ScaleBack(
            remediation_id=remediation.id,
            service=remediation.service,
            state=ScaleBackState.WAITING,
            due=None,
            namespace=last["namespace"],
            deployment=last["deployment"],
            original=first["before"],
            scaled_to=last["target"],
            autoscaler=last.get("autoscaler"),
        )

    async def scale_back(self, scale_back: ScaleBack) -> None:
        """Return the Deployment to its replicas from before, unless someone else scaled it
        meanwhile; journaled as a step of the remediation, done whatever its result."""
        remediation_id = scale_back.remediation_id
        position = await self._store.next_position(remediation_id)
        await self._store.start_step(remediation_id, position, "scale-back", scale_back.original)
        target = {
            "namespace": scale_back.namespace,
            "deployment": scale_back.deployment,
            "autoscaler": scale_back.autoscaler,
        }
        try:
            if scale_back.autoscaler is not None:
                owner = await self._actions.kubernetes.autoscaler(
                    scale_back.namespace, scale_back.autoscaler
                )
                current = owner.min_replicas
                found = f"autoscaler {owner.name} has minReplicas {current}, not the"
                who = "someone else changed it"
            else:
                _, current = await self._actions.kubernetes.read_replicas(
                    scale_back.namespace, (scale_back.deployment,)
                )
                found = f"{scale_back.deployment} has {current} replicas, not the"
                who = "someone else scaled it"
            if current != scale_back.scaled_to:
                result, detail = (
                    StepResult.FAILED,
                    f"skipped: {found} {scale_back.scaled_to} this remediation set; {who}",
                )
            else:
                outcome = await self._actions.scale_to(target, scale_back.original)
                result, detail = StepResult.SUCCEEDED, outcome.detail
        except ActionError as e:
            result, detail = StepResult.FAILED, str(e)
        await self._store.finish_step(
            remediation_id, position, result=result, detail=detail, data={}
        )
        await self._store.save_scale_back(
            dataclasses.replace(scale_back, state=ScaleBackState.DONE)
        )
        logger.info(
            "remediation.scaled_back",
            extra={"remediation": remediation_id, "result": result.value, "detail": detail},
        )


async def _outcome(
    action: Coroutine[Any, Any, ActionOutcome],
) -> tuple[StepResult, str, dict[str, Any]]:
    """(result, detail, data) of an action, as a step records it; an ActionError is a failed
    step, never a crash of the remediation."""
    try:
        outcome = await action
    except ActionError as e:
        return StepResult.FAILED, str(e), {"error": type(e).__name__}
    return StepResult.SUCCEEDED, outcome.detail, outcome.data


def _problem_of(remediation: Remediation, timeline: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": timeline.get("problem_key"),
        "title": timeline.get("title"),
        "source": timeline.get("source"),
        "state": timeline.get("problem_state"),
        "project": remediation.service.project,
        "stage": remediation.service.stage,
        "service": remediation.service.service,
    }
