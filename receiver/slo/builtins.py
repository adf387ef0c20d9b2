"""The SLIs Keptn's SLI providers answered without any sli.yaml, with Keptn's own queries.

Keptn 0.6's Dynatrace tutorials ship no sli.yaml: prometheus-sli-service and
dynatrace-sli-service knew `throughput`, `error_rate` and `response_time_p50/p90/p95`
themselves (keptn-contrib/prometheus-sli-service lib/prometheus/prometheus.go,
keptn-contrib/dynatrace-sli-service pkg/lib/dynatrace/dynatrace.go `getTimeseriesConfig`).
An indicator an sli.yaml defines always wins over the built-in of the same name.

One difference, deliberate: prometheus-sli-service filtered on the scrape job
`<service>-<project>-<stage>-canary`, because Keptn's quality gates judged the canary. A
remediation judges the live deployment (`sli.deployment`, Keptn's `$DEPLOYMENT`): the job
is `$SERVICE-$PROJECT-$STAGE` for `primary`, as Keptn's prometheus-service named the
primary's scrape job, and `$SERVICE-$PROJECT-$STAGE-$DEPLOYMENT` for any other.

`problem_open` (Keptn >= 0.8, dynatrace-sli-service in a remediation) is not a query: 1 while
a problem the remediation is for is still open, else 0 — answered from the journal.
"""

from __future__ import annotations

from collections.abc import Mapping

NAMES = ("throughput", "error_rate", "response_time_p50", "response_time_p90", "response_time_p95")
PROBLEM_OPEN = "problem_open"

_DYNATRACE_ENTITIES = (
    "entitySelector=type(SERVICE),tag(keptn_project:$PROJECT),tag(keptn_stage:$STAGE),"
    "tag(keptn_service:$SERVICE),tag(keptn_deployment:$DEPLOYMENT)"
)
_DYNATRACE = {
    "throughput": "builtin:service.requestCount.total:merge(0):sum",
    "error_rate": "builtin:service.errors.total.rate:merge(0):avg",
    "response_time_p50": "builtin:service.response.time:merge(0):percentile(50)",
    "response_time_p90": "builtin:service.response.time:merge(0):percentile(90)",
    "response_time_p95": "builtin:service.response.time:merge(0):percentile(95)",
}


def query(name: str, provider: str, *, filter: Mapping[str, str], deployment: str) -> str | None:
    """The built-in query for `name` (placeholders still to fill), or None."""
    if name not in NAMES:
        return None
    if provider == "dynatrace":
        return f"metricSelector={_DYNATRACE[name]}&{_DYNATRACE_ENTITIES}"
    if provider != "prometheus":
        return None
    labels = _labels(filter, deployment)
    requests = f"sum(rate(http_requests_total{{{labels}}}[$DURATION_SECONDS]))"
    if name == "throughput":
        return requests
    if name == "error_rate":
        errors = f"sum(rate(http_requests_total{{{labels},status!~'2..'}}[$DURATION_SECONDS]))"
        return f"{errors}/{requests}"
    percentile = name.rsplit("_p", 1)[1]
    return (
        f"histogram_quantile(0.{percentile},sum(rate(http_response_time_milliseconds_bucket"
        f"{{{labels}}}[$DURATION_SECONDS]))by(le))"
    )


def _labels(filter: Mapping[str, str], deployment: str) -> str:
    """Keptn's label matchers: the job unless a filter names one, then each filter — `key='v'`
    (quotes dropped), or as written when its value starts with an operator (=, !=, =~, !~)."""
    matchers = []
    for key, value in filter.items():
        if value.startswith(("=", "!=", "=~", "!~")):
            matchers.append(key + value.replace('"', "'"))
        else:
            clean = value.replace("'", "").replace('"', "")
            matchers.append(f"{key}='{clean}'")
    if "job" not in filter:
        job = "$SERVICE-$PROJECT-$STAGE" + ("" if deployment == "primary" else "-$DEPLOYMENT")
        matchers.insert(0, f"job='{job}'")
    return ",".join(matchers)
