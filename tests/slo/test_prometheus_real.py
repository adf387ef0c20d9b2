"""The Prometheus SLI provider and the generated alert rules against a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from receiver import configtree
from receiver.errors import SliError
from receiver.models import ServiceRef
from receiver.slo import evaluation
from receiver.slo.prometheus import Prometheus
from tests import processes
from tests.conftest import EXAMPLE_CONFIG
from tests.prometheus_stack import Stack

CARTS = ServiceRef(project="sockshop", stage="production", service="carts")
WINDOW = 2.0


async def measure(stack: Stack) -> evaluation.Measured:
    service_slo = evaluation.load(
        configtree.scan(EXAMPLE_CONFIG), CARTS, default_provider="prometheus"
    )
    assert service_slo is not None
    async with aiohttp.ClientSession() as session:
        return await evaluation.measure(
            service_slo,
            Prometheus(session, stack.prometheus_url),
            end=time.time(),
            window=WINDOW,
            deployment="primary",
        )


async def test_p90_and_error_rate_are_what_the_app_produced(prometheus_stack: Stack) -> None:
    prometheus_stack.control(latency_ms=430, error_ratio=0.2, rps=200)
    await asyncio.to_thread(prometheus_stack.settle, latency_ms=430, error_ratio=0.2)
    measured = await measure(prometheus_stack)
    assert measured.reasons == {}
    # Every request took 430 ms: histogram_quantile interpolates inside the (400, 450] bucket.
    assert 400 < measured.values["response_time_p90"] <= 450  # type: ignore[operator]
    assert measured.values["error_rate"] == pytest.approx(0.2, abs=0.03)

    prometheus_stack.control(latency_ms=120, error_ratio=0.0)
    await asyncio.to_thread(prometheus_stack.settle, latency_ms=120, error_ratio=0.0)
    healthy = await measure(prometheus_stack)
    assert 100 < healthy.values["response_time_p90"] <= 150  # type: ignore[operator]
    assert healthy.values["error_rate"] == 0.0


async def test_an_empty_result_is_zero_as_in_keptn(prometheus_stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        provider = Prometheus(session, prometheus_stack.prometheus_url)
        value = await provider.value(
            "sum(rate(no_such_metric_total[2s]))", start=0, end=time.time()
        )
    assert value == 0.0


async def test_a_wrong_query_gives_prometheus_reason(prometheus_stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        provider = Prometheus(session, prometheus_stack.prometheus_url)
        with pytest.raises(SliError, match=r"Prometheus answered 400: .*parse error"):
            await provider.value("sum(rate(http_requests_total[2s]", start=0, end=time.time())


async def test_several_series_are_not_silently_reduced_to_one(prometheus_stack: Stack) -> None:
    prometheus_stack.control(latency_ms=100, error_ratio=0.5)
    await asyncio.to_thread(prometheus_stack.settle, latency_ms=100, error_ratio=0.5)
    async with aiohttp.ClientSession() as session:
        provider = Prometheus(session, prometheus_stack.prometheus_url)
        with pytest.raises(SliError, match="returned 2 series, expected one"):
            await provider.value("rate(http_requests_total[2s])", start=0, end=time.time())
    prometheus_stack.control(error_ratio=0.0)


async def test_an_unreachable_prometheus_is_a_clear_error() -> None:
    async with aiohttp.ClientSession() as session:
        provider = Prometheus(session, f"http://127.0.0.1:{processes.free_port()}", timeout=2)
        with pytest.raises(SliError, match="cannot reach Prometheus"):
            await provider.value("up", start=0, end=time.time())


def test_the_live_cli_evaluates_against_prometheus(prometheus_stack: Stack, tmp_path: Path) -> None:
    prometheus_stack.control(latency_ms=430, error_ratio=0.2, rps=200)
    prometheus_stack.settle(latency_ms=430, error_ratio=0.2)
    command = [
        sys.executable,
        "-m",
        "receiver",
        "slo",
        "evaluate",
        "--config",
        str(EXAMPLE_CONFIG),
        "--project",
        "sockshop",
        "--stage",
        "production",
        "--service",
        "carts",
        "--window",
        "2s",
    ]
    env = processes.receiver_env(
        RECEIVER_PROMETHEUS_URL=prometheus_stack.prometheus_url,
        RECEIVER_STORE=str(tmp_path / "none.db"),
    )
    result = subprocess.run(
        [*command, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    document = json.loads(result.stdout)
    statuses = {o["sli"]: o["status"] for o in document["objectives"]}
    assert statuses == {"response_time_p90": "pass", "error_rate": "fail"}
    assert (document["result"], document["score"]) == ("fail", 50.0)
    table = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=True)
    assert "sockshop/production/carts" in table.stdout
    assert "result: fail   score 50.0   (pass >= 90%, warning >= 75%)" in table.stdout
    prometheus_stack.control(latency_ms=100, error_ratio=0.0)


def test_promtool_accepts_the_generated_rules(prometheus_stack: Stack) -> None:
    result = subprocess.run(
        [processes.binary("promtool"), "check", "rules", str(prometheus_stack.rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout


def test_a_slow_app_fires_the_generated_alert(prometheus_stack: Stack) -> None:
    prometheus_stack.control(latency_ms=900, error_ratio=0.0, rps=200)
    deadline = time.monotonic() + 20
    firing: list[dict[str, object]] = []
    while time.monotonic() < deadline and not firing:
        firing = [
            a
            for a in prometheus_stack.alerts()
            if a["labels"]["alertname"] == "response_time_p90" and a["state"] == "firing"
        ]
        time.sleep(0.2)
    prometheus_stack.control(latency_ms=100)
    assert firing, "response_time_p90 did not fire within 20 s"
    (alert,) = firing
    assert alert["labels"] == alert["labels"] | {  # type: ignore[operator]
        "service": "carts",
        "project": "sockshop",
        "stage": "production",
        "severity": "webhook",
        "pod_name": "carts-primary",
    }
    assert alert["annotations"] == {
        "summary": "response_time_p90",
        "descriptions": "Pod name carts-primary",
    }
