"""What the HTTP API answers, as types: the handlers encode these, and the OpenAPI document's
response schemas are generated from them (msgspec), so that the document says what the
answers are rather than what someone remembered them to be.

Times are RFC 3339 strings in UTC (receiver.clock.iso). A field that only some answers carry
(a step's `data` in a timeline, not in a list) is UNSET where it is absent: left out of the
JSON, optional in the schema.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from receiver.models import Outcome, ProblemState, Recorded, RemediationState, Signal, Source
from receiver.remediation.model import Phase, StepResult, Verdict

Time = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
Id = Annotated[int, msgspec.Meta(ge=0)]


class Error(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every 4xx and 5xx answer: what went wrong, and where when it is a field."""

    error: str
    field: str | None = None  # e.g. alerts[2].status
    detail: str | None = None
    key: str | None = None
    id: int | None = None
    state: str | None = None
    problems: list[str] | None = None  # a refused reload: every problem of the configuration


class Recording(msgspec.Struct, kw_only=True):
    """A webhook's answer: what happened to each notification it carried, in order."""

    recorded: tuple[Recorded, ...]


# -- problems and notifications ----------------------------------------------------------------


class Problem(msgspec.Struct, kw_only=True):
    id: Id
    key: str
    source: Source
    occurrence: int  # 1, then 2 for the next time the same key opens after it was resolved
    title: str
    state: ProblemState
    project: str | None
    stage: str | None
    service: str | None
    url: str | None
    repeats: int
    first_seen: Time
    last_seen: Time
    resolved_at: Time | None
    ignored_reason: str | None  # why it starts no remediation


class Problems(msgspec.Struct, kw_only=True):
    problems: list[Problem]


class Occurrence(msgspec.Struct, kw_only=True):
    id: Id
    occurrence: int
    state: ProblemState
    first_seen: Time
    resolved_at: Time | None


class ProblemNotification(msgspec.Struct, kw_only=True):
    id: Id
    received_at: Time
    signal: Signal
    outcome: Outcome
    reason: str | None
    payload: Any  # the alert (of its group) or the Dynatrace problem, as delivered


class ProblemDetail(Problem, kw_only=True):
    """The newest occurrence of a key, a page of its notifications (newest first) and its
    earlier occurrences."""

    occurrences: list[Occurrence]
    notifications: list[ProblemNotification]
    notifications_total: int
    notifications_next: int | UnsetType = UNSET  # ?before= for the next page, if there is one


class Notification(msgspec.Struct, kw_only=True):
    id: Id
    received_at: Time
    source: Source
    key: str
    signal: Signal
    outcome: Outcome
    reason: str | None
    problem_id: int | None


class Notifications(msgspec.Struct, kw_only=True):
    notifications: list[Notification]


# -- remediations ------------------------------------------------------------------------------


class Window(msgspec.Struct, kw_only=True):
    start: Time
    end: Time


class Target(msgspec.Struct, kw_only=True):
    criteria: str
    target: float | None
    violated: bool


class Objective(msgspec.Struct, kw_only=True):
    sli: str
    value: float | None
    status: str  # pass | warning | fail | info
    score: float
    weight: float
    key_sli: bool
    targets: list[Target]


class Evaluation(msgspec.Struct, kw_only=True):
    """An SLO evaluation of a step; its objectives and reasons in a remediation's timeline."""

    result: str  # pass | warning | fail
    score: float | None
    window: Window
    objectives: list[Objective] | UnsetType = UNSET
    reasons: dict[str, str] | UnsetType = UNSET  # why an SLI has no value


class Step(msgspec.Struct, kw_only=True):
    position: int
    action: str
    input: Any  # the action's value as remediation.yaml wrote it
    result: StepResult
    detail: str | None
    verdict: Verdict | None
    started_at: Time
    ended_at: Time | None
    duration_seconds: float | None
    evaluation: Evaluation | None
    data: Any | UnsetType = UNSET  # what the action recorded (a timeline's steps only)


class Joined(msgspec.Struct, kw_only=True):
    problems: int  # problems of a storm that joined it
    open: int


class Approval(msgspec.Struct, kw_only=True):
    required: bool
    decision: str | None  # approved | rejected
    until: Time | None


class Remediation(msgspec.Struct, kw_only=True):
    id: Id
    problem_key: str
    source: Source
    title: str
    problem_state: ProblemState
    project: str
    stage: str
    service: str
    rule: str | None
    rule_file: str | None
    state: RemediationState
    phase: Phase
    reason: str | None  # why it ended as it did
    created_at: Time
    started_at: Time | None
    ended_at: Time | None
    steps: list[Step]
    joined: Joined
    approval: Approval | UnsetType = UNSET  # a rule with approval: manual


class Remediations(msgspec.Struct, kw_only=True):
    remediations: list[Remediation]


class JoinedProblem(msgspec.Struct, kw_only=True):
    key: str
    title: str
    state: ProblemState
    first_seen: Time


class Timeline(Remediation, kw_only=True):
    """One remediation, in full: its plan, where it stands, every step with what it did."""

    plan: dict[str, Any]
    current_step: int
    phase_until: Time | None
    cancel_requested: bool
    joined_problems: list[JoinedProblem]


class CancelTaken(msgspec.Struct, kw_only=True):
    id: Id
    cancel_requested: bool


class DecisionTaken(msgspec.Struct, kw_only=True):
    id: Id
    decision: str  # approved | rejected


# -- the service -------------------------------------------------------------------------------


class Reloaded(msgspec.Struct, kw_only=True):
    reloaded: bool
    services: list[str]
    restart_to_apply: list[str]  # settings that changed but take effect after a restart


class Alive(msgspec.Struct, kw_only=True):
    status: str


class Store(msgspec.Struct, kw_only=True):
    backend: str  # sqlite | postgresql
    where: str


class Readiness(msgspec.Struct, kw_only=True):
    status: str  # ready | not ready
    role: str  # leader | follower
    store: Store
    checks: dict[str, str]
    actions_unavailable: dict[str, str]
    last_reload: str | UnsetType = UNSET  # why the last reload was refused


ANSWERS = (
    Error,
    Recording,
    Problems,
    ProblemDetail,
    Notifications,
    Remediations,
    Timeline,
    CancelTaken,
    DecisionTaken,
    Reloaded,
    Alive,
    Readiness,
)
"""Every type an answer is encoded from: the OpenAPI document's components."""

_ENCODER = msgspec.json.Encoder()


def encode(answer: msgspec.Struct) -> bytes:
    return _ENCODER.encode(answer)


T = TypeVar("T")


def of(kind: type[T], document: Any) -> T:
    """`document` (a dict as the journal reads it) as the answer type `kind`; raises
    msgspec.ValidationError where they differ, so that an answer never says more or other
    than its type."""
    return msgspec.convert(document, kind)
