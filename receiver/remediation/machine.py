"""The remediation state machine: one pure function from (progress, event) to what follows.

    queued ─Dequeued→ [cooldown ─Elapsed→] [awaiting_approval ─Approved→] action[p]
    awaiting_approval ─Rejected→ rejected      awaiting_approval ─Elapsed→ escalate
    action[p] ─Acted(ok)→ wait ─Elapsed→ evaluate ─Judged(healed)→ healed
    action[p] ─Acted(failed)→ action[p+1]      evaluate ─Judged(not healed)→ action[p+1]
    action[p], the plan says escalate or has no action p → escalate ─Escalated→ escalated
    wait ─Resolved→ evaluate (the source resolved it after an action: judge now, or once
        `min_window` has passed since the action, so that there is time after it to judge)
    evaluate ─Undecided→ resolved (the SLO could not say; the source resolved it)
    Resolved before an action succeeded, Cancelled, Expired — at the safe point where they
    find it → resolved / cancelled / expired

The driver (receiver/engine/driver.py) performs each effect, feeds the event it produced
back in, and saves the progress before performing the next effect; a pair of phase and
event not in the table raises `UnexpectedEvent`, which the driver escalates.
"""

from __future__ import annotations

import dataclasses

from receiver.models import RemediationState
from receiver.remediation.model import (
    ESCALATE,
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
    Escalated,
    Evaluate,
    Event,
    Expired,
    Finish,
    Judged,
    Judgement,
    Phase,
    Plan,
    Progress,
    Rejected,
    Resolved,
    Sleep,
    Undecided,
    Verdict,
)

_STALE = "its problems expired (no notification within problems.stale_after)"


class UnexpectedEvent(Exception):  # named for what happened, like KeyError
    """An event the phase has no transition for: a bug, escalated rather than left hanging."""

    def __init__(self, phase: Phase, event: Event) -> None:
        super().__init__(f"no transition from phase {phase.value!r} on {event!r}")
        self.phase = phase
        self.event = event


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    progress: Progress
    effect: Effect
    judgement: Judgement | None = None  # a verdict to save with the progress


def resume(plan: Plan, progress: Progress) -> Effect:
    """The effect a remediation at `progress` performs next (at start or after a restart)."""
    match progress.phase:
        case Phase.QUEUED:
            return Dequeue()
        case Phase.COOLDOWN | Phase.WAIT | Phase.AWAITING_APPROVAL:
            assert progress.until is not None
            return Sleep(progress.until)  # people were asked for approval already
        case Phase.ACTION:
            return _next_action(plan, progress.position)
        case Phase.EVALUATE:
            return Evaluate(progress.position)
        case Phase.DONE:
            return Finish()


def transition(
    plan: Plan,
    progress: Progress,
    event: Event,
    *,
    now: float,
    wait: float,
    approval_timeout: float = 15 * 60.0,
    acted_at: float | None = None,
    min_window: float = 0.0,
) -> Transition:
    """What `event` makes of `progress`; `wait` is the wait after an action, and
    `approval_timeout` how long a manual rule waits for a person (the plan's own, else the
    receiver's). `acted_at`: when the action at the current position finished; a resolve
    is judged no sooner than `min_window` after it."""
    position = progress.position
    match progress.phase, event:
        case _, Escalated(why=why, delivered=delivered, detail=detail, dry_run=dry_run):
            if dry_run:  # never claim a delivery that did not happen
                outcome = "escalation not sent: dry run"
            elif delivered:
                outcome = "escalation delivered"
            else:
                outcome = f"nobody was told: {detail}"
            return _finish(
                progress,
                RemediationState.ESCALATED,
                f"{why}; {outcome}",
                Judgement(position, Verdict.ESCALATED),
            )

        case Phase.QUEUED | Phase.COOLDOWN, Cancelled():
            return _finish(progress, RemediationState.CANCELLED, "cancelled before it began")
        case Phase.QUEUED | Phase.COOLDOWN, Resolved():
            return _finish(
                progress,
                RemediationState.RESOLVED,
                "resolved by its source before the remediation began",
            )
        case Phase.QUEUED | Phase.COOLDOWN, Expired():
            return _finish(
                progress, RemediationState.EXPIRED, f"{_STALE} before the remediation began"
            )
        case Phase.QUEUED, Dequeued(cooldown_until=until) if until is not None and until > now:
            cooling = dataclasses.replace(progress, phase=Phase.COOLDOWN, until=until)
            return Transition(cooling, Sleep(until))
        case (Phase.QUEUED, Dequeued()) | (Phase.COOLDOWN, Elapsed()) if plan.manual_approval:
            until = now + (plan.approval_timeout or approval_timeout)
            asking = dataclasses.replace(
                progress,
                state=RemediationState.AWAITING_APPROVAL,
                phase=Phase.AWAITING_APPROVAL,
                until=until,
            )
            return Transition(asking, AskApproval(until))
        case (Phase.QUEUED, Dequeued()) | (Phase.COOLDOWN, Elapsed()):
            return _at_action(plan, progress, 0, state=RemediationState.RUNNING)

        case Phase.AWAITING_APPROVAL, Approved():
            return _at_action(plan, progress, 0, state=RemediationState.RUNNING)
        case Phase.AWAITING_APPROVAL, Rejected():
            return _finish(progress, RemediationState.REJECTED, "rejected by a person")
        case Phase.AWAITING_APPROVAL, Elapsed():
            why = "nobody approved it in time (remediation.approval_timeout)"
            escalating = dataclasses.replace(
                progress, state=RemediationState.RUNNING, phase=Phase.ACTION, until=None
            )
            return Transition(escalating, Escalate(0, why))
        case Phase.AWAITING_APPROVAL, Cancelled():
            return _finish(progress, RemediationState.CANCELLED, "cancelled awaiting approval")
        case Phase.AWAITING_APPROVAL, Resolved():
            return _finish(
                progress, RemediationState.RESOLVED, "resolved by its source awaiting approval"
            )
        case Phase.AWAITING_APPROVAL, Expired():
            return _finish(progress, RemediationState.EXPIRED, f"{_STALE} awaiting approval")
        case _, Approved() | Rejected():
            # Too late (it timed out, or ended): a decision changes nothing now; go on with
            # what was about to happen.
            return Transition(progress, resume(plan, progress))

        case Phase.ACTION, Cancelled():
            return _finish(
                progress, RemediationState.CANCELLED, f"cancelled by hand {_after(position)}"
            )
        case Phase.ACTION, Resolved():
            return _finish(
                progress, RemediationState.RESOLVED, f"resolved by its source {_after(position)}"
            )
        case Phase.ACTION, Expired():
            return _finish(progress, RemediationState.EXPIRED, f"{_STALE} {_after(position)}")
        case Phase.ACTION, Acted(succeeded=False):
            return _at_action(plan, progress, position + 1, Judgement(position, Verdict.NEXT))
        case Phase.ACTION, Acted(succeeded=True):
            waiting = dataclasses.replace(progress, phase=Phase.WAIT, until=now + wait)
            return Transition(waiting, Sleep(now + wait))

        case Phase.WAIT | Phase.EVALUATE, Cancelled():
            return _finish(
                progress, RemediationState.CANCELLED, f"cancelled by hand {_after(position + 1)}"
            )
        case Phase.WAIT | Phase.EVALUATE, Resolved(has_slo=False):
            # Without an SLO, the source resolving the problem after an action is the verdict.
            return _finish(
                progress,
                RemediationState.HEALED,
                f"no slo.yaml; the source resolved the problem {_after(position + 1)}",
                Judgement(position, Verdict.HEALED),
            )
        case Phase.WAIT, Resolved(has_slo=True) if (
            acted_at is not None
            and progress.until is not None
            and now < (ready := min(progress.until, acted_at + min_window))
        ):
            # Resolved moments after the action: judged once there is time after the action
            # to judge it by (a window mostly before it would call a real heal a failure),
            # still long before the wait would have ended.
            return Transition(dataclasses.replace(progress, until=ready), Sleep(ready))
        case (Phase.WAIT, Resolved(has_slo=True)) | (Phase.WAIT, Elapsed()):
            # A resolve after a successful action ends the wait: judge now whether it healed
            # (with Keptn's timing the alert an action fixed resolves within the wait, and
            # waiting it out would call every such heal merely "resolved").
            evaluating = dataclasses.replace(progress, phase=Phase.EVALUATE, until=None)
            return Transition(evaluating, Evaluate(position))
        case Phase.EVALUATE, Resolved(has_slo=True):
            return Transition(progress, Evaluate(position))  # being judged already
        case Phase.WAIT | Phase.EVALUATE, Expired():
            return _finish(progress, RemediationState.EXPIRED, f"{_STALE} {_after(position + 1)}")

        case Phase.EVALUATE, Judged(healed=True, why=why):
            return _finish(
                progress,
                RemediationState.HEALED,
                f"{plan.actions[position].action} (step {position + 1}) healed it: {why}",
                Judgement(position, Verdict.HEALED),
            )
        case Phase.EVALUATE, Judged(healed=False):
            return _at_action(plan, progress, position + 1, Judgement(position, Verdict.NEXT))
        case Phase.EVALUATE, Undecided(why=why):
            return _finish(
                progress,
                RemediationState.RESOLVED,
                f"resolved by its source {_after(position + 1)}; the SLO could not say"
                f" whether it healed: {why}",
                Judgement(position, Verdict.RESOLVED),
            )

    raise UnexpectedEvent(progress.phase, event)


def give_up(progress: Progress, position: int, error: Exception) -> Transition:
    """The engine failed (a bug, a plan it cannot read): escalate as the step at `position`."""
    why = f"the receiver failed ({type(error).__name__}: {error})"
    escalating = dataclasses.replace(progress, phase=Phase.ACTION, position=position, until=None)
    return Transition(escalating, Escalate(position, why))


def _at_action(
    plan: Plan,
    progress: Progress,
    position: int,
    judgement: Judgement | None = None,
    *,
    state: RemediationState | None = None,
) -> Transition:
    acting = dataclasses.replace(
        progress,
        state=state or progress.state,
        phase=Phase.ACTION,
        position=position,
        until=None,
    )
    return Transition(acting, _next_action(plan, position), judgement)


def _next_action(plan: Plan, position: int) -> Act | Escalate:
    if position >= len(plan.actions):
        return Escalate(position, "no action healed it")
    if plan.actions[position].action == ESCALATE:
        return Escalate(position, "the rule escalates here")
    return Act(position)


def _finish(
    progress: Progress,
    state: RemediationState,
    reason: str,
    judgement: Judgement | None = None,
) -> Transition:
    done = dataclasses.replace(progress, state=state, phase=Phase.DONE, until=None, reason=reason)
    return Transition(done, Finish(), judgement)


def _after(actions: int) -> str:
    return (
        f"after {actions} action{'s' if actions != 1 else ''}" if actions else "before any action"
    )
