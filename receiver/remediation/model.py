"""A remediation as values: its plan (the matched rule, frozen when it was matched), its
progress (everything a restart needs), the events that move it and the effects it asks for.

Nothing here does I/O; `machine.py` is the one function from (progress, event) to the next
progress and effect. Enum values are the strings the journal and the API have always
stored, so journals written by earlier versions read unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from receiver.models import RemediationState, ServiceRef

ESCALATE = "escalate"  # the action name that hands the problem to people


class Phase(enum.StrEnum):
    QUEUED = "queued"  # behind another remediation of the service
    COOLDOWN = "cooldown"  # the service's last remediation ended too recently
    AWAITING_APPROVAL = "awaiting_approval"  # until a person approves, rejects, or `until`
    ACTION = "action"  # about to run (or running) the action at `position`
    WAIT = "wait"  # the action ran; waiting until `until` before judging it
    EVALUATE = "evaluate"  # judging the action at `position` by the SLO
    DONE = "done"


class StepResult(enum.StrEnum):
    STARTED = "started"  # journaled before the action ran: unknown until it is finished
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Verdict(enum.StrEnum):
    """What came of one step."""

    HEALED = "healed"
    NEXT = "next"  # failed, or judged not healed: the next action
    # The source resolved it and the SLO could not say whether this step healed it (0.1.0
    # wrote it for a resolve before a step was judged; read still).
    RESOLVED = "resolved"
    ESCALATED = "escalated"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PlannedAction:
    action: str  # as written in remediation.yaml: scaling, toggle-feature, escalate, ...
    value: Any  # as written, validated when the rule was loaded
    title: str | None = None  # Keptn 0.7's `name`
    description: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """The matched rule as the journal keeps it, so a resumed remediation runs what matched."""

    rule: str
    actions: tuple[PlannedAction, ...]
    wait: float | None = None  # None: the receiver's remediation.wait
    evaluation_window: float | None = None
    dry_run: bool = False
    rule_file: str | None = None
    manual_approval: bool = False  # the rule's `approval: manual`
    approval_timeout: float | None = None  # None: the receiver's remediation.approval_timeout

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "actions": [
                {
                    "action": a.action,
                    "value": a.value,
                    "name": a.title,
                    "description": a.description,
                }
                for a in self.actions
            ],
            "wait": self.wait,
            "evaluation_window": self.evaluation_window,
            "dry_run": self.dry_run,
            "rule_file": self.rule_file,
            "approval": "manual" if self.manual_approval else "automatic",
            "approval_timeout": self.approval_timeout,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Plan:
        return cls(
            rule=document["rule"],
            actions=tuple(
                PlannedAction(
                    action=entry["action"],
                    value=entry.get("value"),
                    title=entry.get("name"),
                    description=entry.get("description"),
                )
                for entry in document["actions"]
            ),
            wait=document.get("wait"),
            evaluation_window=document.get("evaluation_window"),
            dry_run=bool(document.get("dry_run")),
            rule_file=document.get("rule_file"),
            manual_approval=document.get("approval") == "manual",
            approval_timeout=document.get("approval_timeout"),
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """Whether an opening notification starts a remediation, decided before it is recorded."""

    reason: str | None = None  # why no remediation will run
    plan: Plan | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Progress:
    """Where a remediation stands; saved before every effect, so a restart resumes from it."""

    state: RemediationState = RemediationState.PENDING
    phase: Phase = Phase.QUEUED
    position: int = 0  # the action being run, waited for or judged
    until: float | None = None  # when a cooldown or a wait ends
    reason: str | None = None  # why it ended as it did (once DONE)

    @property
    def finished(self) -> bool:
        return self.phase is Phase.DONE


@dataclasses.dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict given to the step at `position`, saved with the progress that follows it."""

    position: int
    verdict: Verdict


# -- events: what happened ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Dequeued:
    """The service's turn came; its cooldown (if any) ends at `cooldown_until`."""

    cooldown_until: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Elapsed:
    """A cooldown or a wait ran out."""


@dataclasses.dataclass(frozen=True, slots=True)
class Acted:
    """The action at the current position ran (now, or before a restart)."""

    succeeded: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Judged:
    """The SLO evaluation of the action at the current position."""

    healed: bool
    why: str


@dataclasses.dataclass(frozen=True, slots=True)
class Undecided:
    """The SLO could not say (an SLI without a value) whether the action at the current
    position healed, and the source resolved every problem meanwhile: its word decides."""

    why: str


@dataclasses.dataclass(frozen=True, slots=True)
class Escalated:
    """The problem was handed to people (`delivered`, else `detail` says what failed)."""

    why: str
    delivered: bool
    detail: str
    dry_run: bool = False  # nothing was sent: the rule, or the receiver, runs dry


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """The source resolved the problem; `has_slo`: the service has an slo.yaml to judge by."""

    has_slo: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Cancelled:
    """A person asked to stop it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Expired:
    """Its problems went stale: no notification within problems.stale_after, so the receiver
    closed them (a source that lost track of them, or an alert whose resolve never came)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Approved:
    """A person approved a remediation that waits for approval."""


@dataclasses.dataclass(frozen=True, slots=True)
class Rejected:
    """A person rejected a remediation that waits for approval."""


Event = (
    Dequeued
    | Elapsed
    | Acted
    | Judged
    | Undecided
    | Escalated
    | Resolved
    | Cancelled
    | Expired
    | Approved
    | Rejected
)


# -- effects: what to do next ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Dequeue:
    """Wait for the service's turn, then tell when its cooldown ends (→ Dequeued)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Wait until `until` unless something happens first (→ Elapsed, Resolved, Cancelled)."""

    until: float


@dataclasses.dataclass(frozen=True, slots=True)
class Act:
    """Run the plan's action at `position`, journaled before and after (→ Acted)."""

    position: int


@dataclasses.dataclass(frozen=True, slots=True)
class Evaluate:
    """Judge the action at `position` by the service's SLO (→ Judged)."""

    position: int


@dataclasses.dataclass(frozen=True, slots=True)
class Escalate:
    """Hand the problem to people as the step at `position` (→ Escalated)."""

    position: int
    why: str
    action: str = ESCALATE


@dataclasses.dataclass(frozen=True, slots=True)
class AskApproval:
    """Tell people a remediation waits for their approval, then wait for it until `until`
    (→ Approved, Rejected, Elapsed, or a stop)."""

    until: float


@dataclasses.dataclass(frozen=True, slots=True)
class Finish:
    """Nothing more to do: the progress is DONE."""


Effect = Dequeue | Sleep | AskApproval | Act | Evaluate | Escalate | Finish


# -- what the journal gives back ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class StepRecord:
    """One journaled step: an action (or an escalation, a scale-back) and what came of it."""

    position: int
    action: str
    result: StepResult
    checkpoint: dict[str, Any] | None  # the absolute plan saved before the action changed anything
    verdict: Verdict | None
    ended_at: float | None = None  # when its result was journaled: what it did counts from then


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Remediation:
    id: int
    problem_id: int
    service: ServiceRef
    plan: Plan
    progress: Progress
    cancel_requested: bool
    steps: dict[int, StepRecord]
    approval: bool | None = None  # a person's decision, journaled: approved, rejected, none yet


class ScaleBackState(enum.StrEnum):
    WAITING = "waiting"  # for the source to resolve the problem
    DUE = "due"  # at `due`
    DONE = "done"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ScaleBack:
    """Replicas a healed remediation added, to be taken back once its problems are resolved."""

    remediation_id: int
    service: ServiceRef
    state: ScaleBackState
    due: float | None
    namespace: str
    deployment: str
    original: int
    scaled_to: int
    # Where the replicas belong to a HorizontalPodAutoscaler, its name: `original` and
    # `scaled_to` are then its minReplicas, before and after.
    autoscaler: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "due": self.due,
            "namespace": self.namespace,
            "deployment": self.deployment,
            "original": self.original,
            "scaled_to": self.scaled_to,
            "autoscaler": self.autoscaler,
        }
