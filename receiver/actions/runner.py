"""Run one remediation action for one service: the right adapter, a timeout, dry runs,
and the checkpoints that make a retried or resumed action idempotent.

Idempotency: before an action changes anything it hands its plan to `save` (the engine
journals it) — the absolute replica target, the restart timestamp. Run again with that
plan as `checkpoint`, it applies the same absolute change: never a second delta.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from receiver.actions import retries, targets
from receiver.actions.escalation import Escalation
from receiver.actions.featureflags import Unleash
from receiver.actions.kubernetes import Kubernetes
from receiver.actions.webhook import Webhooks
from receiver.errors import PermanentActionError
from receiver.models import (
    ActionKind,
    ActionOutcome,
    Custom,
    Escalate,
    Restart,
    Scale,
    ServiceRef,
    Toggle,
)
from receiver.settings import Settings

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
            reasons["scaling"] = reasons["restart"] = self.kubernetes.unavailable
        if not self._settings.unleash_url:
            reasons["toggle-feature"] = "Unleash is not configured: set RECEIVER_UNLEASH_URL"
        if not self.escalation.configured:
            reasons["escalate"] = "no escalation target: set RECEIVER_ESCALATION_WEBHOOK_URL"
        return reasons

    def target(self, ref: ServiceRef) -> targets.DeploymentTarget:
        return targets.resolve(ref, configured=self._configured, settings=self._settings)

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
        match action:
            case Scale(delta=delta):
                return await self._scale(
                    ref, delta, dry_run=dry_run, checkpoint=checkpoint, save=save
                )
            case Restart():
                return await self._restart(ref, dry_run=dry_run, checkpoint=checkpoint, save=save)
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
                        " featuretoggle/toggle-feature, restart and escalate, and the names"
                        " mapped under actions.webhooks in receiver.yaml"
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
        plan = checkpoint if checkpoint and checkpoint.get("kind") == "scale" else None
        if plan is None:
            name, current = await self.kubernetes.read_replicas(
                target.namespace, target.deployments
            )
            wanted = current + delta
            bounded = min(max(wanted, target.min_replicas), target.max_replicas)
            if bounded == current:
                if delta > 0:
                    raise PermanentActionError(
                        f"no effect: at maximum {target.max_replicas} replicas"
                    )
                if delta < 0:
                    raise PermanentActionError(
                        f"no effect: at minimum {target.min_replicas} replicas"
                    )
                raise PermanentActionError("no effect: a scaling delta of 0")
            plan = {
                "kind": "scale",
                "namespace": target.namespace,
                "deployment": name,
                "before": current,
                "target": bounded,
                "delta": delta,
            }
            await save(plan)
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
        """Return a scaled Deployment to `replicas` (the scale-back after a healed problem)."""
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


def _dry(what: str) -> ActionOutcome:
    return ActionOutcome(detail=f"dry run, nothing changed: {what}", data={"dry_run": True})


async def _discard(checkpoint: Checkpoint) -> None:
    del checkpoint
