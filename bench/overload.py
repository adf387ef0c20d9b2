"""Overload: as many webhooks as this machine can send, at high concurrency, to the receiver
at its default settings — and meanwhile a liveness probe every 100 ms. Prints what was
recorded and what was shed (503 + Retry-After), the latency of both, the probe's worst
answer time, and how many lines the shedding logged.

    python bench/overload.py [--seconds 10] [--concurrency 256]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import body, peak_rss_mb  # noqa: E402
from tests import processes  # noqa: E402
from tests.conftest import AUTH, TOKEN  # noqa: E402


async def flood(url: str, seconds: float, concurrency: int) -> tuple[Counter[int], list[float]]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    headers = AUTH | {"Content-Type": "application/json"}
    counter = iter(range(10**9))

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            n = next(counter)
            item = body([f"o{n}a{a}" for a in range(10)], service="bench", title="x")
            started = time.perf_counter()
            try:
                async with session.post(url, data=item, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                statuses[0] += 1
            latencies.append(time.perf_counter() - started)

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return statuses, latencies


async def probe(url: str, seconds: float) -> list[float]:
    answers: list[float] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
                    await r.read()
            except (aiohttp.ClientError, TimeoutError):
                pass
            answers.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)
    return answers


async def run(port: int, args: argparse.Namespace) -> None:
    base = f"http://127.0.0.1:{port}"
    (statuses, latencies), probes = await asyncio.gather(
        flood(f"{base}/webhooks/alertmanager", args.seconds, args.concurrency),
        probe(f"{base}/healthz", args.seconds),
    )
    total = sum(statuses.values())
    ordered = sorted(latencies)
    print(f"{args.seconds:g} s at concurrency {args.concurrency}: {total} webhooks sent")
    print(
        f"recorded (200) {statuses[200]} = {statuses[200] / args.seconds:.0f}/s,"
        f" shed (503) {statuses[503]}, failed to connect/time out {statuses[0]},"
        f" other {total - statuses[200] - statuses[503] - statuses[0]}"
    )
    print(
        f"latency p50 {statistics.median(ordered) * 1000:.0f} ms,"
        f" p99 {ordered[int(len(ordered) * 0.99) - 1] * 1000:.0f} ms,"
        f" max {ordered[-1] * 1000:.0f} ms"
    )
    print(f"/healthz: {len(probes)} probes, worst {max(probes) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = processes.free_port()
        env = {"RECEIVER_STORE": f"{tmp}/journal.db", "RECEIVER_AUTH_TOKEN": TOKEN}
        log = Path(tmp) / "receiver.log"
        with processes.receiver(ROOT / "config", port=port, log=log, **env) as receiver:
            asyncio.run(run(port, args))
            print(f"receiver peak RSS {peak_rss_mb(receiver.pid):.1f} MB")
        text = log.read_text()
        print(f"receiver log: {text.count(chr(10))} lines, {text.count('http.shed')} http.shed")


if __name__ == "__main__":
    main()
