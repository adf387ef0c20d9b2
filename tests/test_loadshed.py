"""Overload that degrades gracefully: webhooks are shed with 503 + Retry-After while the
event loop runs late at every tick (not after one slow moment), counted, and logged as one
summary line a second. bench/overload.py measures it under real load."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from receiver import loadshed
from tests.conftest import AUTH, ClientFactory, payload


def block(seconds: float) -> None:
    time.sleep(seconds)  # the loop busy with work, as under more load than it can parse


async def late_ticks(count: int, *, block_for: float) -> None:
    for _ in range(count):
        block(block_for)
        await asyncio.sleep(0.001)  # the monitor runs, late


async def test_sustained_lag_is_measured_and_one_slow_moment_is_not() -> None:
    lag, summary = loadshed.LoopLag(interval=0.01, ticks=3), loadshed.ShedSummary()
    monitor = asyncio.create_task(lag.run(summary))
    try:
        await asyncio.sleep(0.05)
        assert lag.seconds < 0.05
        await late_ticks(1, block_for=0.2)
        await asyncio.sleep(0.03)  # quiet ticks again
        assert lag.seconds < 0.05
        await late_ticks(3, block_for=0.2)
        assert lag.seconds > 0.15
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)


async def test_webhooks_are_shed_at_once_while_the_loop_is_late_and_taken_after(
    make_client: ClientFactory,
) -> None:
    client = await make_client(max_loop_lag=0.05)
    body = json.dumps(payload("alertmanager-firing.json"))
    await asyncio.sleep(0.2)
    await late_ticks(3, block_for=0.2)
    shed = await client.post("/webhooks/alertmanager", data=body, headers=AUTH)
    assert (shed.status, shed.headers["Retry-After"]) == (503, "1")
    assert (await shed.json())["detail"].startswith("the receiver runs")
    assert (await client.get("/api/v1/problems")).status == 200  # reads still answer
    await asyncio.sleep(0.3)  # the loop catches up
    taken = await client.post("/webhooks/alertmanager", data=body, headers=AUTH)
    assert taken.status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_webhooks_rejected_total{reason="loop_lag",source="alertmanager"} 1.0' in (
        metrics
    )


def test_shed_requests_are_logged_as_one_summary_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    summary = loadshed.ShedSummary(every=0.2)
    with caplog.at_level(logging.WARNING, logger="receiver.loadshed"):
        deadline = time.monotonic() + 0.5
        shed = 0
        while time.monotonic() < deadline:
            summary.shed("loop_lag" if shed % 3 else "overloaded")
            shed += 1
            time.sleep(0.001)
    lines = [r for r in caplog.records if r.getMessage() == "http.shed"]
    assert 2 <= len(lines) <= 3  # not one per request
    assert sum(getattr(r, "requests", 0) for r in lines) <= shed
    assert set(getattr(lines[0], "reasons", {})) == {"loop_lag", "overloaded"}
