"""The Kubernetes Events a remediation leaves on its service's Deployment, the convention every
controller follows (`kubectl describe deployment` and `kubectl events --for deployment/NAME`
show why an autoscaler rescaled; they show why the receiver did, too): one when an action
starts, one when it ends, one for each verdict and one when the remediation ends.

Each names the remediation, its rule and the step; the reason says what happened
(RemediationScaled, RemediationRolledBack, RemediationHealed, RemediationEscalated, …).
Events are best effort: the journal is the record, and an Event that cannot be written never
fails or holds up the remediation (Actions.announce).
"""

from __future__ import annotations

from receiver.actions.runner import Actions
from receiver.models import RemediationState
from receiver.remediation.model import Remediation, StepResult, Verdict

# remediation.yaml's action name → (what it is doing, what it did, the Event's action)
_ACTIONS = {
    "scaling": ("RemediationScaling", "RemediationScaled", "Scale"),
    "restart": ("RemediationRestarting", "RemediationRestarted", "Restart"),
    "rollback": ("RemediationRollingBack", "RemediationRolledBack", "Rollback"),
    "featuretoggle": ("RemediationTogglingFeature", "RemediationFeatureToggled", "ToggleFeature"),
    "toggle-feature": ("RemediationTogglingFeature", "RemediationFeatureToggled", "ToggleFeature"),
}
_CUSTOM = ("RemediationRunningAction", "RemediationActionRan", "RunAction")
_VERDICTS = {
    Verdict.HEALED: ("RemediationHealed", False),
    Verdict.NEXT: ("RemediationNotHealed", False),
    Verdict.RESOLVED: ("RemediationResolved", False),
    Verdict.ESCALATED: ("RemediationEscalated", True),
}
_ENDINGS = {
    RemediationState.RESOLVED: ("RemediationResolved", False),
    RemediationState.CANCELLED: ("RemediationCancelled", False),
    RemediationState.REJECTED: ("RemediationRejected", False),
    RemediationState.EXPIRED: ("RemediationExpired", True),
}


_KUBERNETES = frozenset({"scaling", "restart", "rollback"})


def _touches_kubernetes(remediation: Remediation) -> bool:
    """Only remediations that act on the Deployment tell of it there: a rule that only
    switches flags or calls people needs no access to the cluster (and gets none)."""
    return any(a.action in _KUBERNETES for a in remediation.plan.actions)


def _about(remediation: Remediation, position: int) -> str:
    return f"remediation {remediation.id} (rule {remediation.plan.rule!r}) step {position + 1}"


async def action_started(
    actions: Actions, remediation: Remediation, position: int, *, action: str, value: object
) -> None:
    if not _touches_kubernetes(remediation):
        return
    started, _, verb = _ACTIONS.get(action, _CUSTOM)
    given = "" if value is None else f" {value}"
    await actions.announce(
        remediation.service,
        dry_run=remediation.plan.dry_run,
        reason=started,
        action=verb,
        note=f"{_about(remediation, position)}: {action}{given} for {remediation.service}",
    )


async def action_ended(
    actions: Actions,
    remediation: Remediation,
    position: int,
    *,
    action: str,
    result: StepResult,
    detail: str,
) -> None:
    if not _touches_kubernetes(remediation):
        return
    _, done, verb = _ACTIONS.get(action, _CUSTOM)
    failed = result is not StepResult.SUCCEEDED
    await actions.announce(
        remediation.service,
        dry_run=remediation.plan.dry_run,
        reason="RemediationActionFailed" if failed else done,
        action=verb,
        note=f"{_about(remediation, position)}: {action} {'failed' if failed else 'done'}:"
        f" {detail}",
        warning=failed,
    )


async def verdict(
    actions: Actions, remediation: Remediation, position: int, given: Verdict, why: str
) -> None:
    if not _touches_kubernetes(remediation):
        return
    reason, warning = _VERDICTS[given]
    await actions.announce(
        remediation.service,
        dry_run=remediation.plan.dry_run,
        reason=reason,
        action="Judge" if given is not Verdict.ESCALATED else "Escalate",
        note=f"{_about(remediation, position)}: {given.value}: {why}",
        warning=warning,
    )


async def ended(
    actions: Actions, remediation: Remediation, state: RemediationState, why: str
) -> None:
    """The end of a remediation whose last word was no step's verdict (resolved before an
    action, cancelled, rejected, expired)."""
    if state not in _ENDINGS or not _touches_kubernetes(remediation):
        return
    reason, warning = _ENDINGS[state]
    await actions.announce(
        remediation.service,
        dry_run=remediation.plan.dry_run,
        reason=reason,
        action="Finish",
        note=f"remediation {remediation.id} (rule {remediation.plan.rule!r}) ended"
        f" {state.value}: {why}",
        warning=warning,
    )
