"""Prometheus alerting rules generated from SLOs, the way Keptn's prometheus-service did.

One rule per objective, named after its SLI, built from the objective's *absolute* pass
criteria only (relative ones, with `+`, `-` or `%`, have nothing to compare with in
Prometheus); `=` is dropped and the comparison inverted, so pass `<600` alerts on `> 600`.
Labels project / stage / service make the alert find its way back to this receiver, and the
summary annotation is the SLI name, which remediation.yaml rules match.

Beyond Keptn (which kept only the last criterion it met): several absolute criteria in one
pass list alert when any is violated (`or`), several pass lists when all are (`and`).
"""

from __future__ import annotations

import re
from typing import Any

from receiver import durations
from receiver.slo import criteria, indicators
from receiver.slo.evaluation import ServiceSlo
from receiver.slo.objectives import Objective

_INVERTED = {"<": ">", "<=": ">", ">": "<", ">=": "<"}
# PromQL operators that bind less tightly than a comparison.
_LOWER_THAN_COMPARISON = re.compile(r"\b(and|or|unless)\b")


def rules(
    service_slo: ServiceSlo, *, window: float, for_: str, deployment: str = "primary"
) -> list[dict[str, Any]]:
    ref = service_slo.service
    context = indicators.Context(
        service=ref, deployment=deployment, window_seconds=window, filter=service_slo.slo.filter
    )
    generated = []
    for objective in service_slo.slo.objectives:
        query = service_slo.queries.get(objective.sli)
        if query is None:
            continue
        expression = _expression(indicators.fill(query, context), objective)
        if expression is None:
            continue
        generated.append(
            {
                "alert": objective.sli,
                "expr": expression,
                "for": for_,
                "labels": {
                    "severity": "webhook",
                    "pod_name": f"{ref.service}-{deployment}",
                    "service": ref.service,
                    "project": ref.project,
                    "stage": ref.stage,
                },
                "annotations": {
                    "summary": objective.sli,
                    # Keptn wrote "{{ $labels.pod_name }}", but the aggregated series has no
                    # such label and Prometheus rendered "Pod name ": written out instead.
                    "descriptions": f"Pod name {ref.service}-{deployment}",
                },
            }
        )
    return generated


def _expression(query: str, objective: Objective) -> str | None:
    if _LOWER_THAN_COMPARISON.search(query):
        query = f"({query})"  # `a or b > 5` would compare b alone
    per_list = []
    for criteria_list in objective.pass_criteria:
        absolute = [c for c in criteria_list if _alertable(c)]
        if absolute:
            per_list.append([(_INVERTED[c.operator], _number(c.number)) for c in absolute])
    if not per_list:
        return None
    clauses = [
        " or ".join(f"({query} {operator} {number})" for operator, number in violations)
        if len(violations) > 1
        else f"{query} {violations[0][0]} {violations[0][1]}"
        for violations in per_list
    ]
    if len(clauses) == 1:
        return clauses[0]  # Keptn's form: `<query> > 600`
    return " and ".join(f"({clause})" for clause in clauses)


def _alertable(criterion: criteria.Criterion) -> bool:
    return (
        criterion.error is None
        and criterion.kind is criteria.Kind.ABSOLUTE
        and criterion.operator in _INVERTED
    )


def _number(value: float) -> str:
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def document(
    groups: list[tuple[ServiceSlo, list[dict[str, Any]]]], *, format: str
) -> dict[str, Any]:
    spec = {
        "groups": [
            {
                "name": f"{s.service.service} {s.service.project}-{s.service.stage} alerts",
                "rules": group_rules,
            }
            for s, group_rules in groups
            if group_rules
        ]
    }
    if format == "prometheus":
        return spec
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "selfheal-receiver-slo",
            "labels": {"app.kubernetes.io/name": "selfheal-receiver", "role": "alert-rules"},
        },
        "spec": spec,
    }


DEFAULT_WINDOW = durations.parse("180s")  # Keptn's rules looked at the last 3 minutes
