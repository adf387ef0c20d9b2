"""The HTTP API as an OpenAPI 3.1 document, served at /api/v1/openapi.json. A test keeps it
and the routes the service registers the same, path for path and method for method."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON = "application/json"


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {_JSON: {"schema": schema}}
    return answer


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": kind}}  # fmt: skip


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]
_WEBHOOK_ANSWERS = {
    "200": _answer("recorded (committed): what happened to each notification", {"type": "object"}),
    "400": _answer("malformed JSON or a wrong shape, with the field", _ERROR),
    "401": _answer("missing or wrong credentials", _ERROR),
    "408": _answer("the body stopped arriving (server.body_timeout)", _ERROR),
    "413": _answer("body over server.max_body_bytes", _ERROR),
    "503": _answer("not recorded: overloaded or the journal refused; retry (Retry-After)", _ERROR),
}
_DECISION = {
    "202": _answer("taken", {"type": "object"}),
    "401": _answer("missing or wrong credentials", _ERROR),
    "404": _answer("no such remediation", _ERROR),
    "409": _answer("not in a state that takes it", _ERROR),
}

# path → method → (summary, parameters, security, answers)
_READINESS = {
    "type": "object",
    "required": ["status", "role", "store", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "role": {"type": "string", "enum": ["leader", "follower"]},
        "store": {
            "type": "object",
            "properties": {
                "backend": {"type": "string", "enum": ["sqlite", "postgresql"]},
                "where": {"type": "string"},
            },
        },
        "checks": {"type": "object"},
    },
}
_ROUTES: dict[str, dict[str, tuple[str, list[dict[str, Any]], bool, dict[str, Any]]]] = {
    "/webhooks/alertmanager": {
        "post": ("An Alertmanager webhook (payload version 4); every alert is read", [], True,
                 _WEBHOOK_ANSWERS),
    },
    "/webhooks/dynatrace": {
        "post": ("A Dynatrace problem notification, plain or in Keptn's CloudEvent", [], True,
                 _WEBHOOK_ANSWERS),
    },
    "/api/v1/problems": {
        "get": ("Problems, newest first", [
            _query("project", "only this project"), _query("stage", "only this stage"),
            _query("service", "only this service"),
            _query("state", "open, resolved or expired"),
            _query("limit", "at most this many (1-1000, default 100)", "integer"),
        ], False, {"200": _answer("the problems", {"type": "object"}),
                   "400": _answer("a filter it cannot use", _ERROR)}),
    },
    "/api/v1/problems/{key}": {
        "get": ("The newest occurrence of a key, a page of its notifications, its earlier"
                " occurrences", [
                    _KEY,
                    _query("notifications", "notifications per page (default 50, at most 500)",
                           "integer"),
                    _query("before", "the page before this notification id", "integer"),
                ], False, {"200": _answer("the problem", {"type": "object"}),
                           "404": _answer("no such key", _ERROR)}),
    },
    "/api/v1/notifications": {
        "get": ("Recent notifications and what was done with each", [
            _query("outcome", "opened, repeated, resolved, ignored or test"),
            _query("limit", "at most this many", "integer"),
        ], False, {"200": _answer("the notifications", {"type": "object"})}),
    },
    "/api/v1/remediations": {
        "get": ("Remediations, newest first", [
            _query("state", "pending, awaiting_approval, running, healed, escalated, resolved,"
                   " cancelled, expired or rejected"),
            _query("project", "only this project"), _query("stage", "only this stage"),
            _query("service", "only this service"),
            _query("limit", "at most this many", "integer"),
        ], False, {"200": _answer("the remediations", {"type": "object"})}),
    },
    "/api/v1/remediations/{id}": {
        "get": ("One remediation's timeline: rule, steps, evaluations, verdict and why", [_ID],
                False, {"200": _answer("the timeline", {"type": "object"}),
                        "404": _answer("no such remediation", _ERROR)}),
    },
    "/api/v1/remediations/{id}/cancel": {
        "post": ("Stop a remediation at its next safe point", [_ID], True, _DECISION),
    },
    "/api/v1/remediations/{id}/approve": {
        "post": ("Let a remediation that awaits approval run", [_ID], True, _DECISION),
    },
    "/api/v1/remediations/{id}/reject": {
        "post": ("End a remediation that awaits approval, before any action", [_ID], True,
                 _DECISION),
    },
    "/api/v1/openapi.json": {
        "get": ("This document", [], False, {"200": _answer("OpenAPI 3.1", {"type": "object"})}),
    },
    "/-/reload": {
        "post": ("Read the configuration again; refused whole when anything is wrong", [], True,
                 {"200": _answer("in force now", {"type": "object"}),
                  "400": _answer("refused, with every problem; the old one stays", _ERROR),
                  "401": _answer("missing or wrong credentials", _ERROR)}),
    },
    "/": {"get": ("The web page: problems and remediations", [], False,
                  {"200": {"description": "HTML", "content": {"text/html": {}}}})},
    "/ui/remediations/{id}": {
        "get": ("The web page of one remediation, with approve, reject and cancel", [_ID],
                False, {"200": {"description": "HTML", "content": {"text/html": {}}},
                        "404": _answer("no such remediation", _ERROR)}),
    },
    "/ui/{asset}": {
        "get": ("The page's script and stylesheet", [
            {"name": "asset", "in": "path", "required": True,
             "schema": {"type": "string", "enum": ["app.js", "app.css"]}},
        ], False, {"200": {"description": "the file"}}),
    },
    "/favicon.ico": {"get": ("None: 204", [], False, {"204": {"description": "no icon"}})},
    "/healthz": {"get": ("Alive", [], False, {"200": _answer("alive", {"type": "object"})})},
    "/readyz": {
        "get": ("Ready: configuration loaded, the journal takes a write now; the replica's"
                " role (leader | follower) and store", [], False,
                {"200": _answer("ready, with checks", _READINESS),
                 "503": _answer("not ready, with why", _READINESS)}),
    },
    "/metrics": {"get": ("Prometheus metrics (text format)", [], False,
                         {"200": {"description": "text/plain; version=0.0.4"}})},
}  # fmt: skip


def document(version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, methods in _ROUTES.items():
        for method, (summary, parameters, secured, answers) in methods.items():
            operation: dict[str, Any] = {"summary": summary, "responses": answers}
            if parameters:
                operation["parameters"] = parameters
            if secured:
                operation["security"] = _AUTH
            paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "selfheal-receiver", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                }
            },
        },
    }
