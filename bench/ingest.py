"""Ingest throughput: the receiver (durable, synchronous=FULL) against a bare aiohttp app.

Posts Alertmanager webhooks of 10 alerts each, concurrently, to both servers in the same run
and prints requests/s, p50 and p99 latency, the ratio of throughputs, and the receiver's peak
resident memory. Both servers run as their own processes on loopback.

    python bench/ingest.py [--requests 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import processes  # noqa: E402
from tests.conftest import AUTH, PAYLOADS, TOKEN  # noqa: E402


def webhook(request_index: int, alerts: int) -> bytes:
    body: dict[str, Any] = json.loads((PAYLOADS / "alertmanager-firing.json").read_text())
    template = body["alerts"][0]
    # A service without remediation.yaml: this measures intake, not remediations.
    template["labels"] = template["labels"] | {"service": "bench"}
    body["alerts"] = [
        template | {"fingerprint": f"{request_index:06d}{index:02d}"} for index in range(alerts)
    ]
    return json.dumps(body).encode()


async def load(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = AUTH | {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
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


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(name: str, elapsed: float, latencies: list[float]) -> float:
    rate = len(latencies) / elapsed
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    print(
        f"{name:<10} {rate:8.0f} req/s  {rate * 10:8.0f} alerts/s  "
        f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
    )
    return rate


async def measure(bare_port: int, receiver_port: int, args: argparse.Namespace) -> float:
    bodies = [
        webhook(i % args.groups if args.groups else i, args.alerts) for i in range(args.requests)
    ]
    warmup = [webhook(10**5 + i, args.alerts) for i in range(50)]
    await load(f"http://127.0.0.1:{bare_port}/webhooks/alertmanager", warmup, 8)
    await load(f"http://127.0.0.1:{receiver_port}/webhooks/alertmanager", warmup, 8)
    print(
        f"{args.requests} webhooks of {args.alerts} alerts"
        f" ({f'repeats of {args.groups} groups' if args.groups else 'all new problems'}), "
        f"concurrency {args.concurrency}, cpu count {os.cpu_count()}"
    )
    bare_url = f"http://127.0.0.1:{bare_port}/webhooks/alertmanager"
    bare_rate = report("bare app", *await load(bare_url, bodies, args.concurrency))
    receiver_url = f"http://127.0.0.1:{receiver_port}/webhooks/alertmanager"
    receiver_rate = report("receiver", *await load(receiver_url, bodies, args.concurrency))
    ratio = receiver_rate / bare_rate
    print(f"ratio      {ratio:.2f} of the bare app's throughput")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--alerts", type=int, default=10)
    parser.add_argument(
        "--groups",
        type=int,
        default=0,
        help="distinct alert groups (0: every webhook new; N: repeats of N groups, as"
        " Alertmanager sends them every repeat_interval)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bare_port, receiver_port = processes.free_port(), processes.free_port()
        bare = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_app.py"), str(bare_port)]
        )
        env = {
            "RECEIVER_STORE": f"{tmp}/journal.db",
            "RECEIVER_AUTH_TOKEN": TOKEN,
            "RECEIVER_LOG_LEVEL": "warning",
        }
        try:
            processes.wait_http(f"http://127.0.0.1:{bare_port}/healthz", process=bare)
            log = Path(tmp) / "receiver.log"
            with processes.receiver(ROOT / "config", port=receiver_port, log=log, **env) as rcv:
                asyncio.run(measure(bare_port, receiver_port, args))
                alerts = (args.requests + 50) * args.alerts
                print(f"receiver peak RSS {peak_rss_mb(rcv.pid):.1f} MB after {alerts} alerts")
        finally:
            bare.terminate()
            bare.wait()


if __name__ == "__main__":
    main()
