"""Dynatrace problem notification → one notification.

Two bodies arrive in the wild: the plain custom-webhook body (most setups), and the same
object wrapped in the CloudEvent envelope Keptn asked users to configure. Both are accepted.
"""

from __future__ import annotations

from typing import Any, TypedDict

from receiver.errors import PayloadError
from receiver.models import Notification, ProblemKey, Signal, Source
from receiver.sources import shape


class RawDynatraceProblem(TypedDict, total=False):
    State: str
    ProblemID: str
    PID: str
    ProblemTitle: str
    ProblemURL: str
    ProblemDetails: dict[str, Any]
    Tags: str
    ImpactedEntities: list[dict[str, str]]
    ImpactedEntity: str
    KeptnProject: str
    KeptnStage: str
    KeptnService: str


TEST_TITLE = "Dynatrace problem notification test run"
TEST_PID = "99999"

_SIGNALS = {"OPEN": Signal.OPEN, "RESOLVED": Signal.RESOLVED, "CLOSED": Signal.RESOLVED}
_TAGS = {"project": "keptn_project", "stage": "keptn_stage", "service": "keptn_service"}
_FIELDS = {"project": "KeptnProject", "stage": "KeptnStage", "service": "KeptnService"}


def parse(body: Any) -> Notification:
    obj = shape.require_object(body, "")
    prefix = ""
    if "data" in obj and "PID" not in obj:  # the Keptn CloudEvent envelope
        obj = shape.require_object(obj["data"], "data")
        prefix = "data."
    raw_pid = obj.get("PID")
    if isinstance(raw_pid, int) and not isinstance(raw_pid, bool):
        raw_pid = str(raw_pid)  # a hand-written body may send the number bare
    if not isinstance(raw_pid, str) or not raw_pid:
        raise PayloadError(f"{prefix}PID", "missing" if raw_pid is None else "expected a string")
    pid: str = raw_pid
    state = shape.require_str(obj, "State", prefix)
    title = shape.optional_str(obj, "ProblemTitle", prefix) or ""
    if title == TEST_TITLE or pid == TEST_PID:
        signal = Signal.TEST
    else:
        signal = _SIGNALS.get(state.upper(), Signal.OTHER)
    if signal is Signal.OPEN and not title:
        raise PayloadError(f"{prefix}ProblemTitle", "missing on an OPEN problem")
    tags = _tags(obj, prefix)
    # As Keptn's dynatrace-service routed them: the Keptn* fields are defaults (a catch-all
    # webhook body sets them once for every problem), the keptn_* tags of the problem's
    # entities override them.
    where = {
        name: tags.get(_TAGS[name]) or shape.optional_str(obj, field, prefix)
        for name, field in _FIELDS.items()
    }
    return Notification(
        source=Source.DYNATRACE,
        key=ProblemKey(pid),
        signal=signal,
        title=title or state,
        project=where["project"],
        stage=where["stage"],
        service=where["service"],
        url=shape.optional_str(obj, "ProblemURL", prefix),
        state=state,
    )


def _tags(obj: dict[str, Any], prefix: str) -> dict[str, str]:
    """`Tags` ("k:v, k:v"), falling back to ProblemDetails.tagsOfAffectedEntities."""
    text = shape.optional_str(obj, "Tags", prefix) or ""
    tags: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition(":")
        if sep and name.strip() and value.strip():
            tags.setdefault(name.strip(), value.strip())
    details = obj.get("ProblemDetails")
    entity_tags = details.get("tagsOfAffectedEntities") if isinstance(details, dict) else None
    for tag in entity_tags if isinstance(entity_tags, list) else ():
        if isinstance(tag, dict) and isinstance(tag.get("key"), str):
            tag_value = tag.get("value")
            if isinstance(tag_value, str) and tag_value:
                tags.setdefault(tag["key"], tag_value)
    return tags
