"""What `receiver slo evaluate` says to each mistake a person makes at the prompt: the exit
code 2 and one line naming the file, the field and what was expected. In-process (the
interface itself is run as a subprocess in test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from receiver import cli
from receiver.slo import evaluation
from tests import processes, prometheus_standin

SLO = "objectives:\n- sli: rt\n  pass: [{criteria: ['<600']}]\ntotal_score: {pass: '90%'}\n"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "slo.yaml").write_text(SLO)
    (tmp_path / "values.json").write_text(json.dumps({"rt": 300}))
    return tmp_path


@pytest.mark.parametrize(
    ("values", "previous", "message"),
    [
        (None, None, "receiver: --values is required with --slo"),
        ("[1]", None, 'values.json: expected an object {"<sli name>": number or null}'),
        ('{"rt": "fast"}', None, "values.json: rt: expected a number or null, got 'fast'"),
        ("{not json", None, "values.json: not valid JSON: Expecting property name"),
        ('{"rt": 1}', '{"a": 1}',
         "previous.json: expected a list, newest first, of {result, values}"),
        ('{"rt": 1}', "[3]", "previous.json: [0]: expected an object with result and values"),
        ('{"rt": 1}', '[{"result": "great"}]',
         "previous.json: [0].result: expected pass, warning or fail, got 'great'"),
        ('{"rt": 1}', '[{"result": "pass", "values": {"rt": true}}]',
         "previous.json: [0].values: rt: expected a number or null, got True"),
    ],
)  # fmt: skip
def test_offline_mistakes_exit_2_naming_what_is_wrong(
    files: Path,
    capsys: pytest.CaptureFixture[str],
    values: str | None,
    previous: str | None,
    message: str,
) -> None:
    argv = ["slo", "evaluate", "--slo", str(files / "slo.yaml")]
    if values is not None:
        (files / "values.json").write_text(values)
        argv += ["--values", str(files / "values.json")]
    if previous is not None:
        (files / "previous.json").write_text(previous)
        argv += ["--previous", str(files / "previous.json")]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_an_unreadable_values_file_says_why(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["slo", "evaluate", "--slo", str(files / "slo.yaml"), "--values", str(files / "nope")]
    assert cli.main(argv) == 2
    assert "nope: cannot read: No such file or directory" in capsys.readouterr().err


def test_a_missing_previous_file_is_no_history(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["slo", "evaluate", "--slo", str(files / "slo.yaml"), "--values"]
    argv += [str(files / "values.json"), "--previous", str(files / "none.json")]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["result"] == "pass"


def test_neither_offline_nor_live_arguments_say_which_to_give(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["slo", "evaluate"]) == 2
    assert "give --slo and --values (offline) or --config" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "receiver: --config needs --project, --stage, --service"),
        (["--project", "sockshop", "--stage", "production", "--service", "orders"],
         "receiver: no slo.yaml for sockshop/production/orders"),
        (["--project", "sockshop", "--stage", "production", "--service", "carts",
          "--window", "soon"], "expected a duration such as"),
    ],
)  # fmt: skip
def test_live_mistakes_exit_2(
    config_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert cli.main(["slo", "evaluate", "--config", str(config_dir), *extra]) == 2
    assert message in capsys.readouterr().err


def test_live_evaluation_beside_something_that_is_not_a_journal_warns_and_goes_on(
    config_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values: dict[str, float | None] = {
        prometheus_standin.response_time_p90("2s"): 300.0,
        prometheus_standin.error_rate("2s"): 0.0,
    }
    (tmp_path / "journal.db").write_text("not a database")
    with processes.serve_in_thread(prometheus_standin.create_app(values)) as url:
        monkeypatch.setenv("RECEIVER_PROMETHEUS_URL", url)
        monkeypatch.setenv("RECEIVER_STORE", str(tmp_path / "journal.db"))
        argv = ["slo", "evaluate", "--config", str(config_dir), "--project", "sockshop"]
        argv += ["--stage", "production", "--service", "carts", "--window", "2s"]
        assert cli.main([*argv, "--output", "json"]) == 0
    captured = capsys.readouterr()
    assert "receiver: warning: no history: cannot read the journal" in captured.err
    assert json.loads(captured.out)["result"] == "pass"


def write_service(config_dir: Path, service: str, **files: str) -> None:
    directory = config_dir / "sockshop" / "production" / service
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text)


def test_rules_refuse_what_check_refuses_with_the_same_problems(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_service(config_dir, "orders", slo="objectives: {}\n")
    write_service(config_dir, "payment", slo=SLO, sli="indicators: {other: up}\n")
    assert cli.main(["check", "--config", str(config_dir)]) == 1
    checked = {line for line in capsys.readouterr().out.splitlines() if "/sockshop/" in line}
    assert cli.main(["rules", "--config", str(config_dir)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no rules of a configuration that cannot run
    assert {line.removeprefix("receiver: ") for line in captured.err.splitlines()} == checked
    assert any("orders/slo.yaml: objectives: expected a list" in line for line in checked)
    assert any("payment/slo.yaml" in line and "'rt'" in line for line in checked)


def test_rules_say_which_services_get_no_prometheus_rules(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_service(
        config_dir,
        "users",
        slo=SLO,
        sli="spec_version: '1.0'\nprovider: dynatrace\nindicators: {rt: 'metricSelector=x'}\n",
    )
    assert cli.main(["rules", "--config", str(config_dir)]) == 0
    captured = capsys.readouterr()
    assert (
        "receiver: sockshop/production/users: SLIs come from dynatrace; no Prometheus rules"
        in captured.err
    )
    assert "response_time_p90" in captured.out  # carts' rules are written


def test_rules_refuse_a_window_that_is_not_a_duration(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["rules", "--config", str(config_dir), "--window", "soon"]) == 2
    assert "expected a duration such as" in capsys.readouterr().err


DYNATRACE_SLI = (
    "spec_version: '1.0'\nindicators:\n"
    "  response_time_p90: metricSelector=builtin:service.response.time:merge(0):percentile(90)\n"
    "  error_rate: builtin:service.errors.total.rate:merge(0):avg?scope=tag(keptn_service:carts)\n"
)


def test_check_names_a_dynatrace_sli_file_read_by_prometheus(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sli = config_dir / "sockshop" / "production" / "carts" / "sli.yaml"
    sli.write_text(DYNATRACE_SLI)  # the provider stays prometheus (receiver.yaml's default)
    assert cli.main(["check", "--config", str(config_dir)]) == 1
    out = capsys.readouterr().out
    for name in ("response_time_p90", "error_rate"):
        assert (
            f"{sli}: indicators.{name}: a Dynatrace metric selector, but the SLIs of"
            " sockshop/production/carts come from prometheus: set `provider: dynatrace` in"
            " this sli.yaml (or sli.provider)"
        ) in out.splitlines()
    sli.write_text("provider: dynatrace\n" + DYNATRACE_SLI)
    assert cli.main(["check", "--config", str(config_dir)]) == 0


def test_rules_refuse_to_write_promql_from_a_dynatrace_selector(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (config_dir / "sockshop" / "production" / "carts" / "sli.yaml").write_text(DYNATRACE_SLI)
    assert cli.main(["rules", "--config", str(config_dir)]) == 1
    captured = capsys.readouterr()
    assert "a Dynatrace metric selector, but the SLIs of" in captured.err
    assert "metricSelector" not in captured.out  # no such alert rule written


def test_check_names_promql_read_by_dynatrace(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reverse: the example's Prometheus sli.yaml while the provider is Dynatrace."""
    sli = config_dir / "sockshop" / "production" / "carts" / "sli.yaml"
    sli.write_text("provider: dynatrace\n" + sli.read_text())
    assert cli.main(["check", "--config", str(config_dir)]) == 1
    out = capsys.readouterr().out.splitlines()
    for name in ("response_time_p90", "error_rate"):
        assert (
            f"{sli}: indicators.{name}: PromQL, but the SLIs of sockshop/production/carts come"
            " from dynatrace: set `provider: prometheus` in this sli.yaml (or sli.provider)"
        ) in out


@pytest.mark.parametrize(
    ("query", "promql"),
    [
        ("sum(rate(http_requests_total{job='carts'}[600s]))", True),
        ("histogram_quantile(0.9, sum by(le) (rate(x_bucket[5m])))", True),
        ('up{job="carts"}', True),
        ("sum by (le) (x)", True),
        ("metricSelector=builtin:service.response.time:merge(0):percentile(90)", False),
        ("builtin:service.errors.total.rate:merge(0):avg?scope=tag(keptn_service:carts)", False),
        ('calc:service.carts:filter(eq("dt.entity.service","SERVICE-1")):avg', False),
        ("custom.jmeter.response:avg&entitySelector=type(SERVICE)", False),
    ],
)
def test_promql_is_told_from_dynatrace_selectors(query: str, promql: bool) -> None:
    assert evaluation.looks_like_promql(query) is promql


def test_live_evaluation_exits_1_when_prometheus_cannot_be_reached(
    config_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECEIVER_PROMETHEUS_URL", f"http://127.0.0.1:{processes.free_port()}")
    monkeypatch.setenv("RECEIVER_STORE", str(tmp_path / "journal.db"))
    argv = ["slo", "evaluate", "--config", str(config_dir), "--project", "sockshop"]
    argv += ["--stage", "production", "--service", "carts", "--window", "2s"]
    assert cli.main(argv) == 1  # not an evaluation to trust, though one was printed
    captured = capsys.readouterr()
    assert "response_time_p90" in captured.out
    assert "receiver: response_time_p90: no value: " in captured.err
