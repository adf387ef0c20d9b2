"""Run one remediation action for one service: the right adapter, a timeout, dry runs,
and the checkpoints that make a retried or resumed action idempotent.

Idempotency: before an action changes anything it hands its plan to `save` (the engine
journals it) — the absolute replica target, the restart timestamp. Run again with that
plan as `checkpoint`, it applies the same absolute change: never a second delta.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from receiver import loadshed
from receiver.actions import retries, targets
from receiver.actions.escalation import Escalation
from receiver.actions.featureflags import Unleash
from receiver.actions.kubernetes import Autoscaler, Kubernetes, restored_annotations
from receiver.actions.webhook import Webhooks
from receiver.errors import ActionError, PermanentActionError
from receiver.models import (
    ActionKind,
    ActionOutcome,
    Custom,
    Escalate,
    Restart,
    Rollback,
    Scale,
    ServiceRef,
    Toggle,
)
from receiver.settings import Settings

logger = logging.getLogger(__name__)
Checkpoint = dict[str, Any]
SaveCheckpoint = Callable[[Checkpoint], Awaitable[None]]


class Actions:
    def __init__(
        self,
        *,
        kubernetes: Kubernetes,
        unleash: Unleash,
        escalation: Escalation,
        webhooks: Webhooks,
        configured: frozenset[ServiceRef],
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kubernetes = kubernetes
        self.unleash = unleash
        self.escalation = escalation
        self.webhooks = webhooks
        self._configured = configured
        self._settings = settings
        self._clock = clock
        self._deployments: dict[ServiceRef, tuple[str, str]] = {}  # for Events: found once
        self._event_failures = loadshed.Throttle(every=60.0)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        session: aiohttp.ClientSession,
        kubernetes: Kubernetes,
        configured: frozenset[ServiceRef],
        sleep: retries.Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> Actions:
        """Every adapter wired from settings (HTTP ones share `session`)."""
        return cls(
            kubernetes=kubernetes,
            unleash=Unleash(
                session,
                settings.unleash_url,
                token=settings.unleash_token,
                project=settings.unleash_project,
                environment=settings.unleash_environment,
                timeout=settings.action_timeout,
                attempts=settings.action_attempts,
                backoff=settings.action_backoff,
                sleep=sleep,
            ),
            escalation=Escalation(
                session,
                webhook_url=settings.escalation_webhook_url,
                webhook_token=settings.escalation_webhook_token,
                slack_url=settings.escalation_slack_url,
                timeout=settings.action_timeout,
                attempts=settings.escalation_attempts,
                backoff=settings.action_backoff,
                sleep=sleep,
            ),
            webhooks=Webhooks(
                session,
                settings.action_webhooks,
                timeout=settings.action_timeout,
                attempts=settings.action_attempts,
                backoff=settings.action_backoff,
                sleep=sleep,
            ),
            configured=configured,
            settings=settings,
            clock=clock,
        )

    def reconfigure(self, settings: Settings, configured: frozenset[ServiceRef]) -> None:
        """A reloaded configuration: targets (services, templates, scaling bounds), timeouts
        and dry run from now on. The adapters' connections (Kubernetes, Unleash, escalation,
        HTTP actions) keep what they were started with until a restart."""
        self._settings, self._configured = settings, configured

    def cannot_run(self) -> dict[str, str]:
        """Actions that cannot run with this configuration, and why (for start-up and readyz)."""
        reasons = {}
        if self.kubernetes.unavailable:
            for name in ("scaling", "restart", "rollback"):
                reasons[name] = self.kubernetes.unavailable
        if not self._settings.unleash_url:
            reasons["toggle-feature"] = "Unleash is not configured: set RECEIVER_UNLEASH_URL"
        if not self.escalation.configured:
            reasons["escalate"] = "no escalation target: set RECEIVER_ESCALATION_WEBHOOK_URL"
        return reasons

    def target(self, ref: ServiceRef) -> targets.DeploymentTarget:
        return targets.resolve(ref, configured=self._configured, settings=self._settings)

    async def announce(
        self,
        ref: ServiceRef,
        *,
        reason: str,
        action: str,
        note: str,
        warning: bool = False,
        dry_run: bool = False,
    ) -> None:
        """A Kubernetes Event about the service's Deployment, as `kubectl describe` and
        `kubectl events` show controllers' (reason, the action taken, a note saying why).
        Best effort: never raises; not in a dry run (nothing in the cluster changes), not
        without Kubernetes access, not for a service that maps to no Deployment."""
        if dry_run or self._settings.dry_run or self.kubernetes.unavailable:
            return
        try:
            found = self._deployments.get(ref)
            if found is None:
                target = self.target(ref)
                name, _ = await self.kubernetes.read_replicas(target.namespace, target.deployments)
                found = self._deployments[ref] = (target.namespace, name)
            await self.kubernetes.record_event(
                *found, reason=reason, action=action, note=note, warning=warning
            )
        except ActionError as e:
            if (dropped := self._event_failures.passes("event")) is not None:
                logger.warning(
                    "kubernetes.event_not_written",
                    extra={
                        "service": str(ref),
                        "reason": reason,
                        "error": str(e),
                        "dropped": dropped,
                    },
                )

    async def run(
        self,
        action: ActionKind,
        ref: ServiceRef,
        *,
        dry_run: bool = False,
        checkpoint: Checkpoint | None = None,
        save: SaveCheckpoint | None = None,
        document: dict[str, Any] | None = None,
    ) -> ActionOutcome:
        """Do `action` for `ref` within the action timeout; raises ActionError."""
        timeout = self._settings.action_timeout
        try:
            async with asyncio.timeout(timeout):
                return await self._run(
                    action,
                    ref,
                    dry_run=dry_run or self._settings.dry_run,
                    checkpoint=checkpoint,
                    save=save,
                    document=document,
                )
        except TimeoutError:
            raise PermanentActionError(f"timed out after {timeout:g} s") from None

    async def _run(
        self,
        action: ActionKind,
        ref: ServiceRef,
        *,
        dry_run: bool,
        checkpoint: Checkpoint | None,
        save: SaveCheckpoint | None,
        document: dict[str, Any] | None,
    ) -> ActionOutcome:
        save = save or _discard
        if isinstance(action, Rollback) and self.webhooks.url("rollback") is not None:
            # Mapped under actions.webhooks before the receiver had a rollback of its own
            # (Keptn's custom actions): what the user mapped it to keeps running it.
            action = Custom(name="rollback", value=None)
        match action:
            case Scale(delta=delta):
                return await self._scale(
                    ref, delta, dry_run=dry_run, checkpoint=checkpoint, save=save
                )
            case Restart():
                return await self._restart(ref, dry_run=dry_run, checkpoint=checkpoint, save=save)
            case Rollback():
                return await self._rollback(ref, dry_run=dry_run, checkpoint=checkpoint, save=save)
            case Toggle(flags=flags):
                if dry_run:
                    wanted = ", ".join(f"{n} {'on' if on else 'off'}" for n, on in flags)
                    return _dry(
                        f"switch {wanted} in Unleash {self.unleash.project}/"
                        f"{self.unleash.environment}"
                    )
                return await self.unleash.switch(flags)
            case Escalate():
                if dry_run:
                    return _dry(
                        "escalate to the configured targets"
                        if self.escalation.configured
                        else "escalate to nobody: no escalation target is configured"
                    )
                return await self.escalation.deliver(document or {})
            case Custom(name=name):
                url = self.webhooks.url(name)
                if url is None:
                    raise PermanentActionError(
                        f"no executor for action {name!r}: the receiver runs scaling,"
                        " featuretoggle/toggle-feature, restart, rollback and escalate, and the"
                        " names mapped under actions.webhooks in receiver.yaml"
                    )
                if dry_run:
                    return _dry(f"POST {name} to {url}")
                body = document or {}
                return await self.webhooks.run(name, body, key=str(body.get("idempotency_key")))
        raise PermanentActionError(f"unknown action {action!r}")

    async def _scale(
        self,
        ref: ServiceRef,
        delta: int,
        *,
        dry_run: bool,
        checkpoint: Checkpoint | None,
        save: SaveCheckpoint,
    ) -> ActionOutcome:
        target = self.target(ref)
        if dry_run:
            return _dry(
                f"scale {target} by {delta:+d} replicas "
                f"(bounds {target.min_replicas}..{target.max_replicas})"
            )
        kinds = ("scale", "autoscaler")
        plan = checkpoint if checkpoint and checkpoint.get("kind") in kinds else None
        if plan is None:
            name, current = await self.kubernetes.read_replicas(
                target.namespace, target.deployments
            )
            autoscaler = await self.kubernetes.autoscaler_of(target.namespace, name)
            if autoscaler is not None:
                plan = _autoscaler_plan(target, name, current, delta, autoscaler)
            else:
                plan = _scale_plan(target, name, current, delta)
            await save(plan)
        if plan["kind"] == "autoscaler":
            # Its controller would undo a change of the Deployment's replicas within
            # seconds, and the journal would say they were changed: its floor is raised.
            before = await self.kubernetes.set_min_replicas(
                plan["namespace"], plan["autoscaler"], plan["target"]
            )
            return ActionOutcome(
                detail=f"raised the minReplicas of autoscaler {plan['namespace']}/"
                f"{plan['autoscaler']} from {plan['before']} to {plan['target']}: it owns the"
                f" replicas of {plan['deployment']} ({plan['replicas_before']} now), and would"
                " undo a change of them",
                data=plan | {"observed_before": before},
            )
        observed = await self.kubernetes.set_replicas(
            plan["namespace"], plan["deployment"], plan["target"]
        )
        detail = (
            f"scaled {plan['namespace']}/{plan['deployment']} from {plan['before']} to "
            f"{plan['target']} replicas"
        )
        if plan["target"] != plan["before"] + plan["delta"]:
            detail += f" (bounded by {target.min_replicas}..{target.max_replicas})"
        return ActionOutcome(detail=detail, data=plan | {"observed_before": observed})

    async def scale_to(self, plan: Checkpoint, replicas: int) -> ActionOutcome:
        """Return a scaled Deployment to `replicas` (the scale-back after a healed problem);
        with `autoscaler` in `plan`, that autoscaler's minReplicas."""
        if plan.get("autoscaler"):
            before = await self.kubernetes.set_min_replicas(
                plan["namespace"], plan["autoscaler"], replicas
            )
            return ActionOutcome(
                detail=f"set the minReplicas of autoscaler {plan['namespace']}/"
                f"{plan['autoscaler']} back from {before} to {replicas}",
                data={
                    "namespace": plan["namespace"],
                    "autoscaler": plan["autoscaler"],
                    "before": before,
                    "target": replicas,
                },
            )
        observed = await self.kubernetes.set_replicas(
            plan["namespace"], plan["deployment"], replicas
        )
        return ActionOutcome(
            detail=f"scaled {plan['namespace']}/{plan['deployment']} back from {observed} to "
            f"{replicas} replicas",
            data={
                "namespace": plan["namespace"],
                "deployment": plan["deployment"],
                "before": observed,
                "target": replicas,
            },
        )

    async def _restart(
        self,
        ref: ServiceRef,
        *,
        dry_run: bool,
        checkpoint: Checkpoint | None,
        save: SaveCheckpoint,
    ) -> ActionOutcome:
        target = self.target(ref)
        if dry_run:
            return _dry(f"restart {target}")
        plan = checkpoint if checkpoint and checkpoint.get("kind") == "restart" else None
        if plan is None:
            name, _ = await self.kubernetes.read_replicas(target.namespace, target.deployments)
            moment = datetime.datetime.fromtimestamp(self._clock(), tz=datetime.UTC)
            plan = {
                "kind": "restart",
                "namespace": target.namespace,
                "deployment": name,
                "restarted_at": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
            await save(plan)
        await self.kubernetes.restart(
            plan["namespace"], plan["deployment"], at=plan["restarted_at"]
        )
        return ActionOutcome(
            detail=f"restarted {plan['namespace']}/{plan['deployment']} "
            f"(restartedAt {plan['restarted_at']})",
            data=plan,
        )

    async def _rollback(
        self,
        ref: ServiceRef,
        *,
        dry_run: bool,
        checkpoint: Checkpoint | None,
        save: SaveCheckpoint,
    ) -> ActionOutcome:
        """`kubectl rollout undo`: the previous revision's pod template, journaled whole
        before it is patched in, so that a retry puts back that template — never the one
        before it (undoing twice would roll the Deployment forward again)."""
        target = self.target(ref)
        if dry_run:
            return _dry(f"roll {target} back to its previous revision")
        plan = checkpoint if checkpoint and checkpoint.get("kind") == "rollback" else None
        if plan is None:
            name, _ = await self.kubernetes.read_replicas(target.namespace, target.deployments)
            deployment = await self.kubernetes.deployment(target.namespace, name)
            where = f"{target.namespace}/{name}"
            if deployment["spec"].get("paused"):
                raise PermanentActionError(
                    f"{where} is paused: a rollback would not roll out (kubectl rollout resume)"
                )
            revisions = await self.kubernetes.revisions(target.namespace, deployment)
            if len(revisions) < 2:
                has = f"only revision {revisions[0].number}" if revisions else "no revision yet"
                raise PermanentActionError(
                    f"no previous revision to roll back to: {where} has {has}"
                )
            current, previous = revisions[0], revisions[1]
            annotations = restored_annotations(deployment, previous)
            plan = {
                "kind": "rollback",
                "namespace": target.namespace,
                "deployment": name,
                "from_revision": current.number,
                "to_revision": previous.number,
                "images_before": _images(deployment["spec"]["template"]),
                "images": _images(previous.template),
                "template": previous.template,
                "annotations": annotations,
            }
            await save(plan)
        namespace, name = plan["namespace"], plan["deployment"]
        deployment = await self.kubernetes.deployment(namespace, name)
        done = deployment["spec"]["template"] == plan["template"]
        if not done:
            await self.kubernetes.roll_back(namespace, name, plan["template"], plan["annotations"])
        images = ", ".join(plan["images"])
        detail = (
            f"rolled back {namespace}/{name} from revision {plan['from_revision']} to the"
            f" template of revision {plan['to_revision']} (images {images})"
        )
        if done:
            detail += "; it had that template already"
        return ActionOutcome(
            detail=detail,
            data={k: v for k, v in plan.items() if k not in ("template", "annotations")},
        )


def _scale_plan(
    target: targets.DeploymentTarget, name: str, current: int, delta: int
) -> Checkpoint:
    wanted = current + delta
    bounded = min(max(wanted, target.min_replicas), target.max_replicas)
    if bounded == current:
        if delta > 0:
            raise PermanentActionError(f"no effect: at maximum {target.max_replicas} replicas")
        if delta < 0:
            raise PermanentActionError(f"no effect: at minimum {target.min_replicas} replicas")
        raise PermanentActionError("no effect: a scaling delta of 0")
    return {
        "kind": "scale",
        "namespace": target.namespace,
        "deployment": name,
        "before": current,
        "target": bounded,
        "delta": delta,
    }


def _autoscaler_plan(
    target: targets.DeploymentTarget,
    name: str,
    current: int,
    delta: int,
    autoscaler: Autoscaler,
) -> Checkpoint:
    """Scaling a Deployment an autoscaler owns: raise the autoscaler's minReplicas to the
    wanted count, bounded by its maxReplicas and the action's own maximum."""
    where = f"{target.namespace}/{name}"
    owner = (
        f"the autoscaler {autoscaler.name} (minReplicas {autoscaler.min_replicas}, maxReplicas"
        f" {autoscaler.max_replicas})"
    )
    if delta <= 0:
        raise PermanentActionError(
            f"{where} is scaled by {owner}: scaling it down would be undone; lower the"
            " autoscaler's maxReplicas instead"
        )
    ceiling = min(autoscaler.max_replicas, target.max_replicas)
    wanted = min(current + delta, ceiling)
    if wanted <= max(current, autoscaler.min_replicas):
        raise PermanentActionError(
            f"no effect: {where} is at {current} replicas, the most allowed by {owner} and"
            f" the action's maximum {target.max_replicas}"
        )
    return {
        "kind": "autoscaler",
        "namespace": target.namespace,
        "deployment": name,
        "autoscaler": autoscaler.name,
        "before": autoscaler.min_replicas,
        "target": wanted,
        "replicas_before": current,
        "delta": delta,
    }


def _images(template: dict[str, Any]) -> list[str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return [str(c.get("image")) for c in containers]


def _dry(what: str) -> ActionOutcome:
    return ActionOutcome(detail=f"dry run, nothing changed: {what}", data={"dry_run": True})


async def _discard(checkpoint: Checkpoint) -> None:
    del checkpoint
