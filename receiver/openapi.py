"""The HTTP API as an OpenAPI 3.1 document, served at /api/v1/openapi.json: the contract.

Every status code each route can answer is listed; parameters carry the limits the handlers
enforce; both webhooks have their request bodies; the response schemas are generated from
the types the handlers encode (receiver/views.py, through msgspec), and security is declared
as the receiver is configured (reads and /metrics need credentials only where
`auth.protect_reads` / `auth.protect_metrics` say so; none where `auth.disabled`). A test
keeps the document and the routes the service registers the same, and schemathesis checks
the running service against the document.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import msgspec

from receiver import views
from receiver.models import Outcome, ProblemState, RemediationState

_JSON = "application/json"
_MAX_ID = (1 << 63) - 1  # the journal's largest integer
_REF = "#/components/schemas/{name}"


class Guard(enum.Enum):
    """Which credentials a route needs."""

    NONE = "none"  # probes, the document itself
    WRITE = "write"  # webhooks and every write: always, unless auth.disabled
    READ = "read"  # problem and remediation reads, the page: where auth.protect_reads
    METRICS = "metrics"  # /metrics: where auth.protect_metrics


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Security:
    """What the configuration asks of each kind of route."""

    disabled: bool = False
    protect_reads: bool = False
    protect_metrics: bool = False

    def guards(self, guard: Guard) -> bool:
        if self.disabled or guard is Guard.NONE:
            return False
        if guard is Guard.READ:
            return self.protect_reads
        if guard is Guard.METRICS:
            return self.protect_metrics
        return True


def _json(description: str, schema: str | dict[str, Any]) -> dict[str, Any]:
    reference = {"$ref": _REF.format(name=schema)} if isinstance(schema, str) else schema
    return {"description": description, "content": {_JSON: {"schema": reference}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, "Error")


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def _enum(kind: type[enum.Enum]) -> dict[str, Any]:
    return {"type": "string", "enum": [member.value for member in kind]}


def _whole(low: int, high: int, default: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return schema


_ID = {"name": "id", "in": "path", "required": True, "schema": _whole(0, _MAX_ID)}
_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
_LIMIT = _query("limit", "at most this many, newest first", _whole(1, 1000, 100))
_PLACE = [
    _query("project", "only this project", {"type": "string"}),
    _query("stage", "only this stage", {"type": "string"}),
    _query("service", "only this service", {"type": "string"}),
]
_BAD_ID = _error("the id is not a whole number from 0 to 2^63-1")

_WEBHOOK_ANSWERS = {
    "200": _json("recorded (committed): what happened to each notification", "Recording"),
    "400": _error("not UTF-8 JSON of the expected shape: the field and why"),
    "408": _error("the body stopped arriving (server.body_timeout)"),
    "413": _error("the body is over server.max_body_bytes"),
    "503": _error("not recorded: the receiver is overloaded or its journal refused; retry"),
}
_DECISION = {
    "400": _BAD_ID,
    "404": _error("no such remediation"),
    "409": _error("not in a state that takes it"),
}

# The wire formats as the receiver reads them (receiver/sources): what else they carry is
# kept in the journal and otherwise ignored.
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_REQUESTS = {
    "AlertmanagerAlert": {
        "type": "object",
        "description": "The title is annotations.summary, else labels.alertname (one is needed)."
        " Project, stage and service come from the labels configured under labels.*.",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["firing", "resolved"]},
            "labels": _STRINGS,
            "annotations": _STRINGS,
            "fingerprint": {"type": "string", "description": "the problem's key"},
            "generatorURL": {"type": "string"},
            "startsAt": {"type": "string"},
            "endsAt": {"type": "string"},
        },
    },
    "AlertmanagerWebhook": {
        "type": "object",
        "description": "Alertmanager's webhook, payload version 4; every alert is read.",
        "required": ["alerts"],
        "properties": {
            "version": {"type": "string", "enum": ["4"]},
            "status": {"type": "string"},
            "receiver": {"type": "string"},
            "groupKey": {"type": "string"},
            "groupLabels": _STRINGS,
            "commonLabels": _STRINGS,
            "commonAnnotations": _STRINGS,
            "externalURL": {"type": "string"},
            "truncatedAlerts": {"type": "integer"},
            "alerts": {"type": "array", "items": {"$ref": _REF.format(name="AlertmanagerAlert")}},
        },
    },
    "DynatraceProblem": {
        "type": "object",
        "description": "Dynatrace's custom-webhook placeholders. OPEN and RESOLVED (CLOSED)"
        " act, other states are recorded; an OPEN problem needs its ProblemTitle; PID 99999"
        " is the test notification. Project, stage and service from the keptn_* tags, else"
        " the Keptn* fields.",
        "required": ["State", "PID"],
        "properties": {
            "State": {"type": "string"},
            "PID": {"type": "string", "minLength": 1},
            "ProblemID": {"type": "string"},
            "ProblemTitle": {"type": "string"},
            "ProblemURL": {"type": "string"},
            "Tags": {"type": "string", "description": "key:value, comma separated"},
            "ProblemDetails": {},
            "ImpactedEntities": {},
            "ImpactedEntity": {"type": "string"},
            "KeptnProject": {"type": "string"},
            "KeptnStage": {"type": "string"},
            "KeptnService": {"type": "string"},
        },
    },
    "DynatraceCloudEvent": {
        "type": "object",
        "description": "Keptn's CloudEvent envelope around a Dynatrace problem.",
        "required": ["data"],
        "properties": {
            "specversion": {"type": "string"},
            "type": {"type": "string"},
            "source": {"type": "string"},
            "id": {"type": "string"},
            "data": {"$ref": _REF.format(name="DynatraceProblem")},
        },
    },
}


def _body(*names: str) -> dict[str, Any]:
    refs = [{"$ref": _REF.format(name=name)} for name in names]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"required": True, "content": {_JSON: {"schema": schema}}}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Operation:
    summary: str
    guard: Guard
    answers: dict[str, Any]
    parameters: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None


_ROUTES: dict[str, dict[str, _Operation]] = {
    "/webhooks/alertmanager": {"post": _Operation(
        summary="An Alertmanager webhook (payload version 4); every alert is read",
        guard=Guard.WRITE, answers=_WEBHOOK_ANSWERS, body=_body("AlertmanagerWebhook"))},
    "/webhooks/dynatrace": {"post": _Operation(
        summary="A Dynatrace problem notification, plain or in Keptn's CloudEvent",
        guard=Guard.WRITE, answers=_WEBHOOK_ANSWERS,
        body=_body("DynatraceProblem", "DynatraceCloudEvent"))},
    "/api/v1/problems": {"get": _Operation(
        summary="Problems, newest first", guard=Guard.READ,
        parameters=(*_PLACE, _query("state", "only problems in this state", _enum(ProblemState)),
                    _LIMIT),
        answers={"200": _json("the problems", "Problems"),
                 "400": _error("a filter it cannot use")})},
    "/api/v1/problems/{key}": {"get": _Operation(
        summary="The newest occurrence of a key, a page of its notifications, its earlier"
        " occurrences", guard=Guard.READ,
        parameters=(_KEY,
                    _query("notifications", "notifications per page", _whole(1, 500, 50)),
                    _query("before", "the page before this notification id",
                           _whole(1, _MAX_ID))),
        answers={"200": _json("the problem", "ProblemDetail"),
                 "400": _error("a page it cannot give"),
                 "404": _error("no such key")})},
    "/api/v1/notifications": {"get": _Operation(
        summary="Recent notifications and what was done with each", guard=Guard.READ,
        parameters=(_query("outcome", "only notifications with this outcome", _enum(Outcome)),
                    _LIMIT),
        answers={"200": _json("the notifications", "Notifications"),
                 "400": _error("a filter it cannot use")})},
    "/api/v1/remediations": {"get": _Operation(
        summary="Remediations, newest first", guard=Guard.READ,
        parameters=(_query("state", "only remediations in this state",
                           _enum(RemediationState)), *_PLACE, _LIMIT),
        answers={"200": _json("the remediations", "Remediations"),
                 "400": _error("a filter it cannot use")})},
    "/api/v1/remediations/{id}": {"get": _Operation(
        summary="One remediation's timeline: rule, steps, evaluations, verdict and why",
        guard=Guard.READ, parameters=(_ID,),
        answers={"200": _json("the timeline", "Timeline"), "400": _BAD_ID,
                 "404": _error("no such remediation")})},
    "/api/v1/remediations/{id}/cancel": {"post": _Operation(
        summary="Stop a remediation at its next safe point", guard=Guard.WRITE,
        parameters=(_ID,), answers={"202": _json("taken", "CancelTaken"), **_DECISION})},
    "/api/v1/remediations/{id}/approve": {"post": _Operation(
        summary="Let a remediation that awaits approval run", guard=Guard.WRITE,
        parameters=(_ID,), answers={"202": _json("taken", "DecisionTaken"), **_DECISION})},
    "/api/v1/remediations/{id}/reject": {"post": _Operation(
        summary="End a remediation that awaits approval, before any action",
        guard=Guard.WRITE, parameters=(_ID,),
        answers={"202": _json("taken", "DecisionTaken"), **_DECISION})},
    "/api/v1/openapi.json": {"get": _Operation(
        summary="This document", guard=Guard.NONE,
        answers={"200": _json("OpenAPI 3.1", {"type": "object"})})},
    "/-/reload": {"post": _Operation(
        summary="Read the configuration again; refused whole when anything is wrong",
        guard=Guard.WRITE,
        answers={"200": _json("in force now", "Reloaded"),
                 "400": _error("refused, with every problem; the old one stays")})},
    "/": {"get": _Operation(summary="The web page: problems and remediations",
                            guard=Guard.READ, answers={"200": _html("the page")})},
    "/ui/remediations/{id}": {"get": _Operation(
        summary="The web page of one remediation, with approve, reject and cancel",
        guard=Guard.READ, parameters=(_ID,),
        answers={"200": _html("the page"), "400": _BAD_ID,
                 "404": _error("no such remediation")})},
    "/ui/{asset}": {"get": _Operation(
        summary="The page's script and stylesheet", guard=Guard.NONE,
        parameters=({"name": "asset", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": ["app.js", "app.css"]}},),
        answers={"200": {"description": "the file", "content": {
                     "text/javascript": {"schema": {"type": "string"}},
                     "text/css": {"schema": {"type": "string"}}}},
                 "404": _error("no such file")})},
    "/favicon.ico": {"get": _Operation(summary="None: 204", guard=Guard.NONE,
                                       answers={"204": {"description": "no icon"}})},
    "/healthz": {"get": _Operation(summary="Alive", guard=Guard.NONE,
                                   answers={"200": _json("alive", "Alive")})},
    "/readyz": {"get": _Operation(
        summary="Ready: configuration loaded, the journal takes a write now; the replica's"
        " role (leader | follower) and store", guard=Guard.NONE,
        answers={"200": _json("ready, with checks", "Readiness"),
                 "503": _json("not ready, with why", "Readiness")})},
    "/metrics": {"get": _Operation(
        summary="Prometheus metrics (text format)", guard=Guard.METRICS,
        answers={"200": {"description": "the metrics", "content": {
            "text/plain": {"schema": {"type": "string"}}}}})},
}  # fmt: skip

_AUTH: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]


def _components() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(views.ANSWERS, ref_template=_REF)
    return components | _REQUESTS


_SCHEMAS = _components()  # the same for every document: made once


def document(version: str, security: Security | None = None) -> dict[str, Any]:
    security = security or Security()
    paths: dict[str, Any] = {}
    for path, methods in _ROUTES.items():
        for method, operation in methods.items():
            answers = dict(operation.answers)
            entry: dict[str, Any] = {"summary": operation.summary}
            if operation.parameters:
                entry["parameters"] = list(operation.parameters)
            if operation.body is not None:
                entry["requestBody"] = operation.body
            if security.guards(operation.guard):
                entry["security"] = _AUTH
                answers["401"] = _error("missing or wrong credentials")
            entry["responses"] = dict(sorted(answers.items()))
            paths.setdefault(path, {})[method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "selfheal-receiver", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
            "schemas": _SCHEMAS,
        },
    }
