"""Intake throughput, as a user runs it: the receiver on the example configuration with its
default settings (log level info, synchronous=full: every 2xx after an fsync) against a bare
aiohttp app that reads the body and answers 200.

Three mixes of Alertmanager webhooks of 10 alerts each, concurrency 32:
  new        new alerts of a service without remediation.yaml (recorded, ignored with why)
  storm      new alerts of sockshop/production/carts matching its response_time_p90 rule
             (per-pod alerts: each its own problem; they join one remediation)
  repeats    repeats of 20 open alert groups, what Alertmanager mostly sends

Rounds interleave the bare app and the receiver for each mix, so both see the same machine
state. Per mix it prints the median ratio of throughputs, server CPU per webhook relative
to the bare app's (from /proc/PID/stat), the receiver's p50/p99, the receiver's CPU per
webhook on its event loop's thread and on its other threads (the journal's writer, mostly,
whose Python competes with the loop for the GIL), and at the end the receiver's peak RSS.
Both servers run as their own processes on loopback.

    python bench/ingest.py [--rounds 3] [--requests 600] [--concurrency 32] [--store STORE]

`--store postgresql://…` measures the PostgreSQL journal (an empty database); `--store
postgresql` starts a throwaway local PostgreSQL for it (Debian's, fsync on, as SQLite's
synchronous=full). The default is a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import postgres_server, processes  # noqa: E402
from tests.conftest import AUTH, PAYLOADS, TOKEN  # noqa: E402

ALERTS = 10
TICKS = os.sysconf("SC_CLK_TCK")


def body(keys: list[str], *, service: str, title: str) -> bytes:
    document: dict[str, Any] = json.loads((PAYLOADS / "alertmanager-firing.json").read_text())
    template = document["alerts"][0]
    template["labels"] = template["labels"] | {"service": service}
    template["annotations"] = template["annotations"] | {"summary": title}
    document["alerts"] = [
        template | {"fingerprint": key, "labels": template["labels"] | {"pod_name": key}}
        for key in keys
    ]
    return json.dumps(document).encode()


def mixes(requests: int, round_: int) -> dict[str, Callable[[str], list[bytes]]]:
    """Each mix: the webhooks of one run against one server (`who` keeps keys apart)."""

    def new(who: str) -> list[bytes]:
        return [
            body([f"{who}{round_}n{i}a{a}" for a in range(ALERTS)], service="bench", title="x")
            for i in range(requests)
        ]

    def storm(who: str) -> list[bytes]:
        return [
            body(
                [f"{who}{round_}s{i}a{a}" for a in range(ALERTS)],
                service="carts",
                title="response_time_p90",
            )
            for i in range(requests)
        ]

    def repeats(who: str) -> list[bytes]:
        return [
            body([f"{who}g{i % 20}a{a}" for a in range(ALERTS)], service="bench", title="x")
            for i in range(requests)
        ]

    return {"new": new, "storm": storm, "repeats": repeats}


async def load(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    headers = AUTH | {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            item = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=item, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies


def cpu_seconds(pid: int, *, thread: int | None = None) -> float:
    """CPU time of process `pid`, or of its thread `thread` (the main thread's id is pid)."""
    stat = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_once(url: str, pid: int, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    cpu_before, loop_before = cpu_seconds(pid), cpu_seconds(pid, thread=pid)
    elapsed, latencies = await load(url, bodies, concurrency)
    ordered = sorted(latencies)
    cpu, loop = cpu_seconds(pid) - cpu_before, cpu_seconds(pid, thread=pid) - loop_before
    return {
        "rate": len(bodies) / elapsed,
        "cpu": cpu / len(bodies),
        "loop": loop / len(bodies),  # the event loop's thread
        "other": (cpu - loop) / len(bodies),  # the journal's writer, readers, the rest
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
    }


async def measure(servers: dict[str, tuple[str, int]], args: argparse.Namespace) -> None:
    for name, (url, _) in servers.items():  # warm up both the same way
        await load(url, mixes(50, -1)["new"](f"warm{name}"), 8)
    results: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for round_ in range(args.rounds):
        for mix, make in mixes(args.requests, round_).items():
            order = ["bare", "receiver"] if round_ % 2 == 0 else ["receiver", "bare"]
            measured = {
                who: await run_once(*servers[who], make(who), args.concurrency) for who in order
            }
            results.setdefault(mix, []).append((measured["bare"], measured["receiver"]))
    print(
        f"{args.rounds} interleaved rounds of {args.requests} webhooks x {ALERTS} alerts per mix,"
        f" concurrency {args.concurrency}, {os.cpu_count()} cores; receiver at default settings"
    )
    print(f"{'mix':<9} {'ratio':>6} {'cpu x':>6} {'bare req/s':>11} {'recv req/s':>11}"
          f" {'p50 ms':>7} {'p99 ms':>7} {'loop us':>8} {'other us':>9}")  # fmt: skip
    for mix, pairs in results.items():
        ratio = statistics.median(r["rate"] / b["rate"] for b, r in pairs)
        # A round too short for the bare app to use a clock tick (10 ms) of CPU: no ratio.
        ratios = [r["cpu"] / b["cpu"] for b, r in pairs if b["cpu"] > 0]
        cpu = statistics.median(ratios) if ratios else float("nan")
        print(
            f"{mix:<9} {ratio:6.2f} {cpu:6.1f}"
            f" {statistics.median(b['rate'] for b, _ in pairs):11.0f}"
            f" {statistics.median(r['rate'] for _, r in pairs):11.0f}"
            f" {statistics.median(r['p50'] for _, r in pairs):7.1f}"
            f" {statistics.median(r['p99'] for _, r in pairs):7.1f}"
            f" {statistics.median(r['loop'] for _, r in pairs) * 1e6:8.0f}"
            f" {statistics.median(r['other'] for _, r in pairs) * 1e6:9.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--store", default=None, help="a postgresql:// URL, or `postgresql`")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        store = args.store or f"{tmp}/journal.db"
        if store == "postgresql":
            store = stack.enter_context(postgres_server.running(fsync=True)).create_database()
        print(f"store: {store}")
        bare_port, receiver_port = processes.free_port(), processes.free_port()
        bare = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_app.py"), str(bare_port)]
        )
        env = {"RECEIVER_STORE": store, "RECEIVER_AUTH_TOKEN": TOKEN}
        try:
            processes.wait_http(f"http://127.0.0.1:{bare_port}/healthz", process=bare)
            log = Path(tmp) / "receiver.log"
            with processes.receiver(ROOT / "config", port=receiver_port, log=log, **env) as rcv:
                servers = {
                    "bare": (f"http://127.0.0.1:{bare_port}/webhooks/alertmanager", bare.pid),
                    "receiver": (
                        f"http://127.0.0.1:{receiver_port}/webhooks/alertmanager",
                        rcv.pid,
                    ),
                }
                asyncio.run(measure(servers, args))
                print(f"receiver peak RSS {peak_rss_mb(rcv.pid):.1f} MB")
                lines = log.read_text().count("\n")
                print(f"receiver log: {lines} lines, {log.stat().st_size / 1024:.0f} KiB")
        finally:
            bare.terminate()
            bare.wait()


if __name__ == "__main__":
    main()
