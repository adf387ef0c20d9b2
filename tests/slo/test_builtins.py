"""SLIs without an sli.yaml, and SLI files where Keptn kept them.

Sources of the expected queries (copied as Keptn wrote them, placeholders and all):
- Dynatrace: keptn-contrib/dynatrace-sli-service, pkg/lib/dynatrace/dynatrace.go,
  `getTimeseriesConfig` (0.7 onwards, metrics API v2 form).
- Prometheus: keptn-contrib/prometheus-sli-service, lib/prometheus/prometheus.go (tags 0.2.0
  to 0.3.0), `getDefault*Query` and `getDefaultFilterExpression` — with the job of the
  deployment judged (`primary`: no suffix) instead of its hard-coded `-canary`.
- The Keptn 0.6 Dynatrace self-healing tutorial's files: keptn/examples tag 0.6.2,
  onboarding-carts/slo-self-healing.yaml (no sli.yaml: the provider's built-ins answered).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from receiver import cli, configtree
from receiver.models import ServiceRef
from receiver.slo import builtins, evaluation, indicators
from tests import dynatrace_standin, processes, prometheus_standin

CARTS = ServiceRef(project="sockshop", stage="production", service="carts")
ENTITIES = (
    "type(SERVICE),tag(keptn_project:sockshop),tag(keptn_stage:production),"
    "tag(keptn_service:carts),tag(keptn_deployment:primary)"
)

# keptn/examples 0.6.2 onboarding-carts/slo-self-healing.yaml, unchanged.
KEPTN_062_SELF_HEALING_SLO = """---
spec_version: "0.1.1"
comparison:
  aggregate_function: "avg"
  compare_with: "single_result"
  include_result_with_score: "pass"
  number_of_comparison_results: 1
filter:
objectives:
  - sli: "response_time_p90"
    key_sli: false
    pass:             # pass if (relative change <= 10% AND absolute value is < 1000)
      - criteria:
          - "<=+10%"  # relative values require a prefixed sign (plus or minus)
          - "<1000"   # absolute values only require a logical operator
    warning:          # if the response time is below 1200ms, the result should be a warning
      - criteria:
          - "<=1200"
    weight: 1
total_score:
  pass: "90%"
  warning: "40%"
"""


def filled(
    name: str, provider: str, *, filter: dict[str, str] | None = None, deployment: str = "primary"
) -> str:
    query = builtins.query(name, provider, filter=filter or {}, deployment=deployment)
    assert query is not None
    context = indicators.Context(
        service=CARTS, deployment=deployment, window_seconds=600, filter=filter or {}
    )
    return indicators.fill(query, context)


@pytest.mark.parametrize(
    ("name", "metric"),
    [
        ("throughput", "builtin:service.requestCount.total:merge(0):sum"),
        ("error_rate", "builtin:service.errors.total.rate:merge(0):avg"),
        ("response_time_p50", "builtin:service.response.time:merge(0):percentile(50)"),
        ("response_time_p90", "builtin:service.response.time:merge(0):percentile(90)"),
        ("response_time_p95", "builtin:service.response.time:merge(0):percentile(95)"),
    ],
)
def test_dynatrace_builtins_are_dynatrace_sli_services_queries(name: str, metric: str) -> None:
    assert builtins.query(name, "dynatrace", filter={}, deployment="primary") == (
        f"metricSelector={metric}&entitySelector=type(SERVICE),tag(keptn_project:$PROJECT),"
        "tag(keptn_stage:$STAGE),tag(keptn_service:$SERVICE),tag(keptn_deployment:$DEPLOYMENT)"
    )


def test_prometheus_builtins_are_prometheus_sli_services_queries_over_the_live_job() -> None:
    job = "job='carts-sockshop-production'"
    assert filled("throughput", "prometheus") == f"sum(rate(http_requests_total{{{job}}}[600s]))"
    assert filled("error_rate", "prometheus") == (
        f"sum(rate(http_requests_total{{{job},status!~'2..'}}[600s]))"
        f"/sum(rate(http_requests_total{{{job}}}[600s]))"
    )
    for percentile in ("50", "90", "95"):
        assert filled(f"response_time_p{percentile}", "prometheus") == (
            f"histogram_quantile(0.{percentile},sum(rate(http_response_time_milliseconds_bucket"
            f"{{{job}}}[600s]))by(le))"
        )
    # Keptn's quality gates judged the canary: its job, as Keptn's prometheus-service named it.
    assert filled("throughput", "prometheus", deployment="canary") == (
        "sum(rate(http_requests_total{job='carts-sockshop-production-canary'}[600s]))"
    )


def test_an_slo_filter_adds_label_matchers_as_keptn_did() -> None:
    filter = {"handler": "'ItemsController'", "status": "!~'5..'", "method": '=~"GET|POST"'}
    assert filled("throughput", "prometheus", filter=filter) == (
        "sum(rate(http_requests_total{job='carts-sockshop-production',"
        "handler='ItemsController',status!~'5..',method=~'GET|POST'}[600s]))"
    )
    assert filled("throughput", "prometheus", filter={"job": "carts-live"}) == (
        "sum(rate(http_requests_total{job='carts-live'}[600s]))"
    )


def test_names_without_a_builtin_have_none() -> None:
    assert (
        builtins.query("response_time_p99", "prometheus", filter={}, deployment="primary") is None
    )
    assert builtins.query("throughput", "datadog", filter={}, deployment="primary") is None


def keptn_tutorial(config_dir: Path) -> Path:
    """The example configuration as a Keptn 0.6 Dynatrace user has it: the tutorial's SLO,
    no sli.yaml at all."""
    carts = config_dir / "sockshop" / "production" / "carts"
    (carts / "sli.yaml").unlink()
    (carts / "slo.yaml").write_text(KEPTN_062_SELF_HEALING_SLO)
    return carts


def test_an_sli_yaml_wins_over_the_builtin_and_check_says_where_each_comes_from(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    carts = config_dir / "sockshop" / "production" / "carts"
    (carts / "slo.yaml").write_text(
        "objectives:\n- sli: response_time_p90\n- sli: throughput\n- sli: problem_open\n"
        "  pass: [{criteria: ['<=0']}]\n  key_sli: true\ntotal_score: {pass: '90%'}\n"
    )
    service_slo = evaluation.load(configtree.scan(config_dir), CARTS, default_provider="prometheus")
    assert service_slo is not None
    assert service_slo.sources == {
        "response_time_p90": str(carts / "sli.yaml"),
        "error_rate": str(carts / "sli.yaml"),
        "throughput": "built-in",
        "problem_open": "journal",
    }
    assert service_slo.queries["response_time_p90"].startswith("histogram_quantile(0.9, sum by(le)")
    assert cli.main(["check", "--config", str(config_dir)]) == 0
    assert (
        "sockshop/production/carts: SLIs from prometheus: response_time_p90 <-"
        " sockshop/production/carts/sli.yaml, throughput <- built-in, problem_open <- journal"
    ) in capsys.readouterr().out.splitlines()


def test_keptns_dynatrace_tutorial_without_sli_yaml_is_evaluated_on_the_builtins(
    config_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keptn_tutorial(config_dir)
    standin = dynatrace_standin.create_app(token="dt0c01.TUTORIAL")
    p90 = "builtin:service.response.time:merge(0):percentile(90)"
    standin[dynatrace_standin.METRICS][(p90, ENTITIES)] = [412_000.0]  # µs
    with processes.serve_in_thread(standin) as url:
        for name, value in {
            "RECEIVER_DYNATRACE_URL": url,
            "RECEIVER_DYNATRACE_TOKEN": "dt0c01.TUTORIAL",
            "RECEIVER_SLI_PROVIDER": "dynatrace",
            "RECEIVER_STORE": str(tmp_path / "journal.db"),
        }.items():
            monkeypatch.setenv(name, value)
        assert cli.main(["check", "--config", str(config_dir)]) == 0
        assert (
            "sockshop/production/carts: SLIs from dynatrace: response_time_p90 <- built-in"
            in capsys.readouterr().out
        )
        argv = ["slo", "evaluate", "--config", str(config_dir), "--project", "sockshop"]
        argv += ["--stage", "production", "--service", "carts", "--output", "json"]
        assert cli.main(argv) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert document["result"] == "pass"
    assert document["objectives"][0]["value"] == 412.0
    (request,) = standin[dynatrace_standin.REQUESTS]
    assert (request["metricSelector"], request["entitySelector"]) == (p90, ENTITIES)


def test_sli_files_are_found_where_keptn_kept_them(
    config_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`keptn add-resource --resourceUri=prometheus/sli.yaml` at project, stage and service
    level: each read for its provider only, after the plain sli.yaml of its level; the
    directory is not a service."""
    carts = keptn_tutorial(config_dir)
    stage = config_dir / "sockshop" / "production"
    (stage / "prometheus").mkdir()
    (stage / "prometheus" / "sli.yaml").write_text(
        "spec_version: '1.0'\nindicators:\n"
        "  response_time_p90: stage_level_p90{job='$SERVICE'}\n"
        "  error_rate: stage_level_errors\n"
    )
    (carts / "prometheus").mkdir()
    (carts / "prometheus" / "sli.yaml").write_text(
        "spec_version: '1.0'\nindicators:\n  response_time_p90: service_level_p90{job='$SERVICE'}\n"
    )
    (carts / "dynatrace").mkdir()  # another provider's: not read for Prometheus
    (carts / "dynatrace" / "sli.yaml").write_text(
        "spec_version: '1.0'\nindicators:\n  response_time_p90: builtin:service.response.time\n"
    )
    tree = configtree.scan(config_dir)
    assert tree.services() == (CARTS,)  # `prometheus` under the stage is no service
    service_slo = evaluation.load(tree, CARTS, default_provider="prometheus")
    assert service_slo is not None
    assert service_slo.queries["response_time_p90"] == "service_level_p90{job='$SERVICE'}"
    assert service_slo.sources["response_time_p90"] == str(carts / "prometheus" / "sli.yaml")

    values: dict[str, float | None] = {"service_level_p90{job='carts'}": 300.0}
    with processes.serve_in_thread(prometheus_standin.create_app(values)) as url:
        monkeypatch.setenv("RECEIVER_PROMETHEUS_URL", url)
        monkeypatch.setenv("RECEIVER_STORE", str(tmp_path / "journal.db"))
        argv = ["slo", "evaluate", "--config", str(config_dir), "--project", "sockshop"]
        argv += ["--stage", "production", "--service", "carts", "--output", "json"]
        assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["objectives"][0]["value"] == 300.0


def test_only_dynatrace_files_mean_dynatrace(config_dir: Path) -> None:
    carts = keptn_tutorial(config_dir)
    (carts / "dynatrace").mkdir()
    (carts / "dynatrace" / "sli.yaml").write_text(
        "spec_version: '1.0'\nindicators:\n  response_time_p90: "
        '"builtin:service.response.time:merge(0):percentile(90)?scope=tag(keptn_service:$SERVICE)"\n'
    )
    service_slo = evaluation.load(configtree.scan(config_dir), CARTS, default_provider="prometheus")
    assert service_slo is not None
    assert service_slo.provider == "dynatrace"


def test_a_service_file_inside_a_provider_directory_is_refused_by_check(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    misplaced = config_dir / "sockshop" / "production" / "prometheus"
    misplaced.mkdir()
    (misplaced / "remediation.yaml").write_text("remediations: []\n")
    assert cli.main(["check", "--config", str(config_dir)]) == 1
    assert (
        f"{misplaced / 'remediation.yaml'}: ignored: prometheus/ is where Keptn kept"
        " prometheus's sli.yaml, not a project, stage or service"
    ) in capsys.readouterr().out


def test_check_warns_once_per_indicator_of_keptn_06s_scope_form_naming_the_file(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    carts = keptn_tutorial(config_dir)
    (carts / "dynatrace").mkdir()
    (carts / "dynatrace" / "sli.yaml").write_text(  # keptn/examples 0.6.2 sli-config-dynatrace.yaml
        "---\nspec_version: '1.0'\nindicators:\n"
        '  response_time_p90: "builtin:service.response.time:merge(0):percentile(90)?scope='
        "tag(keptn_project:$PROJECT),tag(keptn_stage:$STAGE),tag(keptn_service:$SERVICE),"
        'tag(keptn_deployment:$DEPLOYMENT)"\n'
    )
    assert cli.main(["check", "--config", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("?scope= form") == 1
    assert (
        f"warning: {carts / 'dynatrace' / 'sli.yaml'}: indicators.response_time_p90: Keptn 0.6's"
        " ?scope= form: sent as entitySelector"
    ) in out
