"""The remediation state machine as a table: every (phase, event) pair has a row here, or is
shown to raise UnexpectedEvent (which the driver escalates)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from receiver.models import RemediationState
from receiver.remediation import machine
from receiver.remediation.model import (
    Act,
    Acted,
    Approved,
    AskApproval,
    Cancelled,
    Dequeue,
    Dequeued,
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
    PlannedAction,
    Progress,
    Rejected,
    Resolved,
    Sleep,
    Undecided,
    Verdict,
)

NOW, WAIT = 1000.0, 600.0
PLAN = Plan(
    rule="response_time_p90",
    actions=(
        PlannedAction(action="scaling", value="+1"),
        PlannedAction(action="restart", value=None),
        PlannedAction(action="escalate", value=None),
    ),
)
PENDING, RUNNING = RemediationState.PENDING, RemediationState.RUNNING
HEALED, RESOLVED = RemediationState.HEALED, RemediationState.RESOLVED
CANCELLED, ESCALATED = RemediationState.CANCELLED, RemediationState.ESCALATED
EXPIRED, REJECTED = RemediationState.EXPIRED, RemediationState.REJECTED
AWAITING = RemediationState.AWAITING_APPROVAL
LATE = "nobody approved it in time (remediation.approval_timeout)"
STALE = "its problems expired (no notification within problems.stale_after)"


def at(phase: Phase, position: int = 0, until: float | None = None) -> Progress:
    state = PENDING if phase in (Phase.QUEUED, Phase.COOLDOWN) else RUNNING
    if phase is Phase.AWAITING_APPROVAL:
        state = AWAITING
    return Progress(state=state, phase=phase, position=position, until=until)


# (progress, event) → (state, phase, position, effect, verdict given, reason)
ROWS: list[tuple[Progress, Event, RemediationState, Phase, int, Any, Verdict | None, str | None]]
ROWS = [
    # queued: the service's turn came
    (at(Phase.QUEUED), Dequeued(), RUNNING, Phase.ACTION, 0, Act(0), None, None),
    (at(Phase.QUEUED), Dequeued(NOW - 1), RUNNING, Phase.ACTION, 0, Act(0), None, None),
    (at(Phase.QUEUED), Dequeued(NOW), RUNNING, Phase.ACTION, 0, Act(0), None, None),  # just over
    (at(Phase.QUEUED), Dequeued(NOW + 60), PENDING, Phase.COOLDOWN, 0, Sleep(NOW + 60), None, None),
    (at(Phase.QUEUED), Cancelled(), CANCELLED, Phase.DONE, 0, Finish(), None,
     "cancelled before it began"),
    (at(Phase.QUEUED), Resolved(has_slo=True), RESOLVED, Phase.DONE, 0, Finish(), None,
     "resolved by its source before the remediation began"),
    (at(Phase.QUEUED), Resolved(has_slo=False), RESOLVED, Phase.DONE, 0, Finish(), None,
     "resolved by its source before the remediation began"),
    # cooldown
    (at(Phase.COOLDOWN, until=NOW), Elapsed(), RUNNING, Phase.ACTION, 0, Act(0), None, None),
    (at(Phase.COOLDOWN, until=NOW), Cancelled(), CANCELLED, Phase.DONE, 0, Finish(), None,
     "cancelled before it began"),
    (at(Phase.COOLDOWN, until=NOW), Resolved(has_slo=True), RESOLVED, Phase.DONE, 0, Finish(),
     None, "resolved by its source before the remediation began"),
    # awaiting approval (a rule with approval: manual; entered below)
    (at(Phase.AWAITING_APPROVAL, until=NOW), Approved(), RUNNING, Phase.ACTION, 0, Act(0), None,
     None),
    (at(Phase.AWAITING_APPROVAL, until=NOW), Rejected(), REJECTED, Phase.DONE, 0, Finish(), None,
     "rejected by a person"),
    (at(Phase.AWAITING_APPROVAL, until=NOW), Elapsed(), RUNNING, Phase.ACTION, 0,
     Escalate(0, LATE), None, None),
    (at(Phase.AWAITING_APPROVAL, until=NOW), Cancelled(), CANCELLED, Phase.DONE, 0, Finish(),
     None, "cancelled awaiting approval"),
    (at(Phase.AWAITING_APPROVAL, until=NOW), Resolved(has_slo=True), RESOLVED, Phase.DONE, 0,
     Finish(), None, "resolved by its source awaiting approval"),
    (at(Phase.AWAITING_APPROVAL, until=NOW), Resolved(has_slo=False), RESOLVED, Phase.DONE, 0,
     Finish(), None, "resolved by its source awaiting approval"),
    (at(Phase.AWAITING_APPROVAL, until=NOW), Expired(), EXPIRED, Phase.DONE, 0, Finish(), None,
     f"{STALE} awaiting approval"),
    # action
    (at(Phase.ACTION), Acted(succeeded=True), RUNNING, Phase.WAIT, 0, Sleep(NOW + WAIT), None,
     None),
    (at(Phase.ACTION), Acted(succeeded=False), RUNNING, Phase.ACTION, 1, Act(1), Verdict.NEXT,
     None),
    (at(Phase.ACTION, 1), Acted(succeeded=False), RUNNING, Phase.ACTION, 2,
     Escalate(2, "the rule escalates here"), Verdict.NEXT, None),
    (at(Phase.ACTION), Cancelled(), CANCELLED, Phase.DONE, 0, Finish(), None,
     "cancelled by hand before any action"),
    (at(Phase.ACTION, 2), Cancelled(), CANCELLED, Phase.DONE, 2, Finish(), None,
     "cancelled by hand after 2 actions"),
    (at(Phase.ACTION), Resolved(has_slo=True), RESOLVED, Phase.DONE, 0, Finish(), None,
     "resolved by its source before any action"),
    (at(Phase.ACTION, 1), Resolved(has_slo=False), RESOLVED, Phase.DONE, 1, Finish(), None,
     "resolved by its source after 1 action"),
    # wait
    (at(Phase.WAIT, until=NOW), Elapsed(), RUNNING, Phase.EVALUATE, 0, Evaluate(0), None, None),
    (at(Phase.WAIT, until=NOW), Cancelled(), CANCELLED, Phase.DONE, 0, Finish(), None,
     "cancelled by hand after 1 action"),
    (at(Phase.WAIT, 1, until=NOW), Resolved(has_slo=True), RUNNING, Phase.EVALUATE, 1,
     Evaluate(1), None, None),  # resolved after an action: judged now, not after the wait
    (at(Phase.WAIT, until=NOW), Resolved(has_slo=False), HEALED, Phase.DONE, 0, Finish(),
     Verdict.HEALED, "no slo.yaml; the source resolved the problem after 1 action"),
    # evaluate
    (at(Phase.EVALUATE), Judged(healed=True, why="SLO pass, score 100.0"), HEALED, Phase.DONE, 0,
     Finish(), Verdict.HEALED, "scaling (step 1) healed it: SLO pass, score 100.0"),
    (at(Phase.EVALUATE), Judged(healed=False, why="SLO fail"), RUNNING, Phase.ACTION, 1, Act(1),
     Verdict.NEXT, None),
    (at(Phase.EVALUATE), Cancelled(), CANCELLED, Phase.DONE, 0, Finish(), None,
     "cancelled by hand after 1 action"),
    (at(Phase.EVALUATE), Resolved(has_slo=True), RUNNING, Phase.EVALUATE, 0, Evaluate(0), None,
     None),  # being judged already: the judgement decides
    (at(Phase.EVALUATE), Resolved(has_slo=False), HEALED, Phase.DONE, 0, Finish(),
     Verdict.HEALED, "no slo.yaml; the source resolved the problem after 1 action"),
    (at(Phase.EVALUATE, 1), Undecided("no value for rt: HTTP 503"), RESOLVED, Phase.DONE, 1,
     Finish(), Verdict.RESOLVED, "resolved by its source after 2 actions; the SLO could not say"
     " whether it healed: no value for rt: HTTP 503"),
    # expired: every problem it was for went stale
    (at(Phase.QUEUED), Expired(), EXPIRED, Phase.DONE, 0, Finish(), None,
     f"{STALE} before the remediation began"),
    (at(Phase.COOLDOWN, until=NOW), Expired(), EXPIRED, Phase.DONE, 0, Finish(), None,
     f"{STALE} before the remediation began"),
    (at(Phase.ACTION, 1), Expired(), EXPIRED, Phase.DONE, 1, Finish(), None,
     f"{STALE} after 1 action"),
    (at(Phase.WAIT, until=NOW), Expired(), EXPIRED, Phase.DONE, 0, Finish(), None,
     f"{STALE} after 1 action"),
    (at(Phase.EVALUATE, 1), Expired(), EXPIRED, Phase.DONE, 1, Finish(), None,
     f"{STALE} after 2 actions"),
    # escalated, from wherever the escalation was started
    (at(Phase.ACTION, 2), Escalated("the rule escalates here", True, "delivered"), ESCALATED,
     Phase.DONE, 2, Finish(), Verdict.ESCALATED, "the rule escalates here; escalation delivered"),
    (at(Phase.ACTION, 3), Escalated("no action healed it", False, "HTTP 500"), ESCALATED,
     Phase.DONE, 3, Finish(), Verdict.ESCALATED,
     "no action healed it; nobody was told: HTTP 500"),
    (at(Phase.ACTION, 2), Escalated("the rule escalates here", False, "dry run", dry_run=True),
     ESCALATED, Phase.DONE, 2, Finish(), Verdict.ESCALATED,
     "the rule escalates here; escalation not sent: dry run"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("progress", "event", "state", "phase", "position", "effect", "verdict", "reason"), ROWS
)
def test_transition(
    progress: Progress,
    event: Event,
    state: RemediationState,
    phase: Phase,
    position: int,
    effect: Any,
    verdict: Verdict | None,
    reason: str | None,
) -> None:
    moved = machine.transition(PLAN, progress, event, now=NOW, wait=WAIT)
    assert (moved.progress.state, moved.progress.phase, moved.progress.position) == (
        state,
        phase,
        position,
    )
    assert moved.effect == effect
    judged = None if verdict is None else Judgement(progress.position, verdict)
    assert moved.judgement == judged
    assert moved.progress.reason == reason
    if isinstance(effect, Sleep):
        assert moved.progress.until == effect.until  # saved, so a restart sleeps the rest
    else:
        assert moved.progress.until is None


EVENTS: list[Event] = [
    Dequeued(),
    Elapsed(),
    Acted(succeeded=True),
    Judged(healed=True, why=""),
    Undecided(why=""),
    Escalated("", True, ""),
    Resolved(has_slo=True),
    Cancelled(),
    Expired(),
    Approved(),
    Rejected(),
]


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_pair_has_a_row_or_raises(phase: Phase, event: Event) -> None:
    covered = {(p.phase, type(e)) for p, e, *_ in ROWS}
    progress = at(phase, until=NOW)
    if (phase, type(event)) in covered:
        machine.transition(PLAN, progress, event, now=NOW, wait=WAIT)
        return
    if isinstance(event, Escalated):  # from any phase: the engine gives up wherever it is
        assert machine.transition(PLAN, progress, event, now=NOW, wait=WAIT).progress.finished
        return
    if isinstance(event, Approved | Rejected):  # too late, or too early: it changes nothing
        moved = machine.transition(PLAN, progress, event, now=NOW, wait=WAIT)
        assert (moved.progress, moved.effect) == (progress, machine.resume(PLAN, progress))
        return
    with pytest.raises(machine.UnexpectedEvent, match=f"from phase '{phase.value}'") as caught:
        machine.transition(PLAN, progress, event, now=NOW, wait=WAIT)
    assert (caught.value.phase, caught.value.event) == (phase, event)


MANUAL = dataclasses.replace(PLAN, manual_approval=True)


@pytest.mark.parametrize(
    ("progress", "event"),
    [(at(Phase.QUEUED), Dequeued()), (at(Phase.COOLDOWN, until=NOW), Elapsed())],
)
def test_a_manual_rule_waits_for_a_person_before_its_first_action(
    progress: Progress, event: Event
) -> None:
    moved = machine.transition(MANUAL, progress, event, now=NOW, wait=WAIT)
    assert (moved.progress.state, moved.progress.phase, moved.progress.until) == (
        AWAITING,
        Phase.AWAITING_APPROVAL,
        NOW + 900,  # remediation.approval_timeout's default, 15 minutes
    )
    assert moved.effect == AskApproval(NOW + 900)
    own = dataclasses.replace(MANUAL, approval_timeout=60.0)
    assert machine.transition(own, progress, event, now=NOW, wait=WAIT).effect == AskApproval(
        NOW + 60
    )
    # After a restart it waits for what is left, without asking again.
    assert machine.resume(MANUAL, moved.progress) == Sleep(NOW + 900)


@pytest.mark.parametrize(
    ("acted_at", "until", "effect"),
    [
        (NOW - 100, NOW + 500, Evaluate(0)),  # a minute of time after the action: judge now
        (NOW - 10, NOW + 590, Sleep(NOW + 50)),  # 10 s after it: once 60 s can be measured
        (NOW - 10, NOW + 20, Sleep(NOW + 20)),  # the wait ends sooner than that anyway
        (None, NOW + 590, Evaluate(0)),  # a step journaled without its end: judge now
    ],
)
def test_a_resolve_soon_after_the_action_is_judged_once_there_is_time_after_it(
    acted_at: float | None, until: float, effect: Any
) -> None:
    moved = machine.transition(
        PLAN,
        at(Phase.WAIT, until=until),
        Resolved(has_slo=True),
        now=NOW,
        wait=WAIT,
        acted_at=acted_at,
        min_window=60.0,
    )
    assert moved.effect == effect
    if isinstance(effect, Sleep):
        assert (moved.progress.phase, moved.progress.until) == (Phase.WAIT, effect.until)
        # The shortened wait ends like any other: judged then.
        then = machine.transition(PLAN, moved.progress, Elapsed(), now=effect.until, wait=WAIT)
        assert then.effect == Evaluate(0)
    else:
        assert moved.progress.phase is Phase.EVALUATE


def test_without_actions_left_it_escalates() -> None:
    plan = dataclasses.replace(PLAN, actions=PLAN.actions[:1])
    moved = machine.transition(
        plan, at(Phase.EVALUATE), Judged(healed=False, why=""), now=NOW, wait=WAIT
    )
    assert moved.effect == Escalate(1, "no action healed it")


@pytest.mark.parametrize(
    ("progress", "effect"),
    [
        (at(Phase.QUEUED), Dequeue()),
        (at(Phase.COOLDOWN, until=NOW + 5), Sleep(NOW + 5)),
        (at(Phase.ACTION, 1), Act(1)),
        (at(Phase.ACTION, 2), Escalate(2, "the rule escalates here")),
        (at(Phase.ACTION, 3), Escalate(3, "no action healed it")),
        (at(Phase.WAIT, until=NOW + 7), Sleep(NOW + 7)),
        (at(Phase.EVALUATE, 1), Evaluate(1)),
        (dataclasses.replace(at(Phase.DONE), state=HEALED), Finish()),
    ],
)
def test_resume_picks_up_where_the_progress_stands(progress: Progress, effect: Any) -> None:
    assert machine.resume(PLAN, progress) == effect


def test_giving_up_escalates_at_the_next_free_position() -> None:
    moved = machine.give_up(at(Phase.WAIT, until=NOW), 1, ValueError("unknown action 'reboot'"))
    assert (moved.progress.phase, moved.progress.position, moved.progress.until) == (
        Phase.ACTION,
        1,
        None,
    )
    assert moved.effect == Escalate(1, "the receiver failed (ValueError: unknown action 'reboot')")


def test_the_plan_reads_back_what_it_wrote() -> None:
    plan = dataclasses.replace(PLAN, wait=60.0, dry_run=True, rule_file="carts/remediation.yaml")
    assert Plan.from_json(plan.to_json()) == plan
    manual = dataclasses.replace(plan, manual_approval=True, approval_timeout=120.0)
    assert Plan.from_json(manual.to_json()) == manual
    written_by_0_1 = {k: v for k, v in plan.to_json().items() if not k.startswith("approval")}
    assert Plan.from_json(written_by_0_1).manual_approval is False
