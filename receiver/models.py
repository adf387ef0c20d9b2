"""Domain values shared by every layer: what a notification says and what a problem is.

Wire formats (Alertmanager, Dynatrace) are parsed into `Notification`s; the journal turns
notifications into `Problem`s. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NewType

import msgspec

ProblemKey = NewType("ProblemKey", str)
"""The source's stable id of a problem: an Alertmanager fingerprint or a Dynatrace PID."""


class Source(enum.Enum):
    ALERTMANAGER = "alertmanager"
    DYNATRACE = "dynatrace"


class Signal(enum.Enum):
    """What one notification says about its problem."""

    OPEN = "open"
    RESOLVED = "resolved"
    TEST = "test"  # Dynatrace "Send test notification": recorded, starts nothing
    OTHER = "other"  # a state we do not act on (Dynatrace MERGED, ...): recorded, ignored


class ProblemState(enum.Enum):
    OPEN = "open"
    RESOLVED = "resolved"
    EXPIRED = "expired"  # no notification within problems.stale_after: closed by the receiver


class RemediationState(enum.Enum):
    PENDING = "pending"  # queued behind another remediation of the service, or a cooldown
    AWAITING_APPROVAL = "awaiting_approval"  # its rule says approval: manual; nobody said yet
    RUNNING = "running"
    HEALED = "healed"  # an SLO evaluation passed (or, without an SLO, the source resolved it)
    ESCALATED = "escalated"  # no action healed it: handed to people
    RESOLVED = "resolved"  # resolved by its source before it could heal it
    CANCELLED = "cancelled"  # stopped by hand
    EXPIRED = "expired"  # its problems went stale (no notification within problems.stale_after)
    REJECTED = "rejected"  # a person said no before its first action

    @property
    def finished(self) -> bool:
        return self not in (
            RemediationState.PENDING,
            RemediationState.AWAITING_APPROVAL,
            RemediationState.RUNNING,
        )


class Outcome(enum.Enum):
    """What the journal did with one notification."""

    OPENED = "opened"  # a new problem, or a new occurrence of a resolved one
    REPEATED = "repeated"  # the problem was open already: repeat count and last seen updated
    RESOLVED = "resolved"  # the open problem was closed
    IGNORED = "ignored"  # recorded, nothing changed; `reason` says why
    TEST = "test"  # a test notification, recorded only


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ServiceRef:
    project: str
    stage: str
    service: str

    def __str__(self) -> str:
        return f"{self.project}/{self.stage}/{self.service}"


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One problem notification, parsed from a webhook; one alert of a group is one of these.

    A msgspec Struct rather than a dataclass: a storm builds thousands a second, and a frozen
    dataclass costs ten times as much to build (bench/ingest.py)."""

    source: Source
    key: ProblemKey
    signal: Signal
    title: str
    project: str | None
    stage: str | None
    service: str | None
    url: str | None
    state: str  # the source's own word for it: Alertmanager's status, Dynatrace's State

    @property
    def service_ref(self) -> ServiceRef | None:
        if self.project and self.stage and self.service:
            return ServiceRef(project=self.project, stage=self.stage, service=self.service)
        return None


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """The journal's answer for one notification, once it is committed; a webhook's answer
    lists these as they are encoded (outcome by its value)."""

    key: ProblemKey
    outcome: Outcome
    problem_id: int | None
    reason: str | None
    remediation_id: int | None = None  # the remediation this notification started


# -- remediation actions, as remediation.yaml asks for them ------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Scale:
    """Keptn's `scaling`: change the replica count by `delta` (`+1`, `1`, `-1`)."""

    delta: int


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Restart:
    """A rollout restart, as `kubectl rollout restart` does it."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Rollback:
    """What `kubectl rollout undo` does: the Deployment's pod template goes back to its
    previous revision's."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Toggle:
    """Keptn's `featuretoggle` / `toggle-feature`: switch Unleash flags on (True) or off."""

    flags: tuple[tuple[str, bool], ...]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Escalate:
    """Hand the problem to people: deliver it to the configured escalation targets."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Custom:
    """An action name the receiver does not run itself: Keptn >= 0.7 handed any name to the
    service subscribed to it (`run-snow-wf`, `rollback`). The rule loads; the step fails
    with the reason, and the chain moves on."""

    name: str
    value: Any


ActionKind = Scale | Restart | Rollback | Toggle | Escalate | Custom


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ActionOutcome:
    """What an action did, once it did it: a sentence for people, facts for machines."""

    detail: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
