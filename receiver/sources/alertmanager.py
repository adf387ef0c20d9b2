"""Alertmanager webhook (payload version 4) → notifications, one per alert.

Keptn read only `alerts[0]` and dropped resolves; a group can carry several alerts and mix
firing with resolved ones even when the group says `firing`, so every alert is read and its
own `status` decides.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Literal, TypedDict

import msgspec

from receiver.errors import PayloadError
from receiver.models import Notification, ProblemKey, Signal, Source
from receiver.sources import shape


class RawAlert(TypedDict, total=False):
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str
    generatorURL: str
    fingerprint: str


class RawWebhook(TypedDict, total=False):
    version: str
    status: str
    receiver: str
    alerts: list[RawAlert]
    groupLabels: dict[str, str]
    externalURL: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class LabelNames:
    """Which alert labels carry project, stage and service; the first one present wins."""

    project: tuple[str, ...] = ("project", "keptn_project")
    stage: tuple[str, ...] = ("stage", "keptn_stage")
    service: tuple[str, ...] = ("service", "keptn_service")


_SIGNALS = {"firing": Signal.OPEN, "resolved": Signal.RESOLVED}


class _Alert(msgspec.Struct):
    """An alert exactly as `parse` accepts it, for msgspec to decode and check in one pass."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    fingerprint: str | None = None
    generatorURL: str | None = None


class _Webhook(msgspec.Struct):
    alerts: list[_Alert]
    version: str | int | None = None


_WEBHOOK = msgspec.json.Decoder(_Webhook)


def read(body: bytes, *, labels: LabelNames) -> tuple[Notification, ...]:
    """Every alert of a webhook's body, as `parse` reads its JSON, in a quarter of the time.

    The common body is decoded and checked in C (msgspec); anything it does not take as it
    is (a malformed body, a missing title, a version other than 4) is read again by
    `parse`, which names what is wrong. Fields the receiver does not use are skipped, not
    converted: a number there of more digits than Python converts, which `parse` refuses,
    does not reject the alerts beside it.
    """
    typed = _read_typed(body, labels)
    return typed if typed is not None else parse(shape.decode_json(body), labels=labels)


def _read_typed(body: bytes, labels: LabelNames) -> tuple[Notification, ...] | None:
    """The notifications of a body msgspec takes as it is; None for `parse` to judge."""
    try:
        webhook = _WEBHOOK.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        # msgspec raises UnicodeDecodeError, not its own error, for bytes in a string that
        # are not UTF-8: `parse` says which.
        return None
    if webhook.version is not None and str(webhook.version) != "4":
        return None
    notifications = []
    for alert in webhook.alerts:
        alert_labels = alert.labels or {}
        annotations = alert.annotations or {}
        title = annotations.get("summary") or alert_labels.get("alertname")
        if not title:
            return None
        notifications.append(
            Notification(
                source=Source.ALERTMANAGER,
                key=ProblemKey(alert.fingerprint or _fingerprint(alert_labels)),
                signal=_SIGNALS[alert.status],
                title=title,
                project=_first(alert_labels, labels.project),
                stage=_first(alert_labels, labels.stage),
                service=_first(alert_labels, labels.service),
                url=alert.generatorURL,
                state=alert.status,
            )
        )
    return tuple(notifications)


def parse(body: Any, *, labels: LabelNames) -> tuple[Notification, ...]:
    """Every alert of the webhook as a notification; any malformed alert rejects the body."""
    webhook = shape.require_object(body, "")
    version = webhook.get("version")
    if version is not None and str(version) != "4":
        raise PayloadError("version", f"unsupported webhook version {version!r}, expected '4'")
    alerts = webhook.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts", f"expected a list, got {shape.type_name(alerts)}")
    return tuple(_parse_alert(alert, index, labels=labels) for index, alert in enumerate(alerts))


def _parse_alert(value: Any, index: int, *, labels: LabelNames) -> Notification:
    parent = f"alerts[{index}]."
    if not isinstance(value, dict):
        raise PayloadError(parent[:-1], f"expected an object, got {shape.type_name(value)}")
    alert: dict[str, Any] = value
    status = shape.require_str(alert, "status", parent)
    signal = _SIGNALS.get(status)
    if signal is None:
        raise PayloadError(parent + "status", f"expected 'firing' or 'resolved', got {status!r}")
    alert_labels = shape.string_map(alert, "labels", parent)
    annotations = shape.string_map(alert, "annotations", parent)
    fingerprint = shape.optional_str(alert, "fingerprint", parent)
    title = annotations.get("summary") or alert_labels.get("alertname")
    if not title:
        raise PayloadError(parent + "labels.alertname", "missing, and no annotations.summary")
    return Notification(
        source=Source.ALERTMANAGER,
        key=ProblemKey(fingerprint or _fingerprint(alert_labels)),
        signal=signal,
        title=title,
        project=_first(alert_labels, labels.project),
        stage=_first(alert_labels, labels.stage),
        service=_first(alert_labels, labels.service),
        url=shape.optional_str(alert, "generatorURL", parent),
        state=status,
    )


def _first(labels: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = labels.get(name)
        if value:
            return value
    return None


def _fingerprint(labels: dict[str, str]) -> str:
    # Alertmanager 0.19+ always sends `fingerprint`; older senders and hand-written tests may
    # not. A hash of the sorted label set is stable across repeats, which is all a key needs.
    text = "\xff".join(f"{name}\xff{labels[name]}" for name in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
