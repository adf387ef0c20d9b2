"""Retention's cost to intake: a journal of old webhooks (10 alerts each, fired then
resolved: closed problems) is pruned while new webhooks keep arriving, and this prints how
long pruning took in all, the longest single transaction (what a webhook may wait behind),
and the webhooks' p50/p99 latency meanwhile.

    python bench/retention.py [--webhooks 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from receiver import configuration  # noqa: E402
from receiver.journal.sqlite import SQLiteJournal  # noqa: E402
from receiver.models import Source  # noqa: E402
from receiver.settings import Settings  # noqa: E402
from receiver.sources import alertmanager  # noqa: E402
from tests.conftest import PAYLOADS  # noqa: E402

DAY = 86400.0


def webhook(keys: list[str], status: str) -> bytes:
    document = json.loads((PAYLOADS / "alertmanager-firing.json").read_text())
    template = document["alerts"][0]
    document["alerts"] = [
        template
        | {
            "status": status,
            "fingerprint": key,
            "labels": template["labels"] | {"service": "bench"},
        }
        for key in keys
    ]
    return json.dumps(document).encode()


async def main(count: int) -> None:
    now = [1_800_000_000.0]
    rules = configuration.require(ROOT / "config", environ={}).rules
    settings, labels = Settings(), alertmanager.LabelNames()
    commits: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        journal = SQLiteJournal(f"{tmp}/journal.db", clock=lambda: now[0])
        await journal.open()

        async def record(body: bytes) -> float:
            notifications = alertmanager.parse(json.loads(body), labels=labels)
            decisions = [rules.decide(n, settings=settings) for n in notifications]
            started = time.perf_counter()
            await journal.record(
                body, notifications, decisions=decisions, source=Source.ALERTMANAGER
            )
            return time.perf_counter() - started

        for index in range(count):  # 30 days ago: fired, then resolved
            keys = [f"old{index}a{a}" for a in range(10)]
            await record(webhook(keys, "firing"))
            await record(webhook(keys, "resolved"))
        size = journal.size_bytes
        now[0] += 30 * DAY
        journal.commit_seconds = commits.append
        started = time.perf_counter()
        pruning = asyncio.create_task(journal.prune(now[0] - 14 * DAY))
        latencies: list[float] = []
        while not pruning.done():  # webhooks keep arriving meanwhile
            latencies.append(
                await record(webhook([f"new{len(latencies)}a{a}" for a in range(10)], "firing"))
            )
        pruned = await pruning
        took = time.perf_counter() - started
        await journal.close()
    ordered = sorted(latencies)
    print(f"journal of {2 * count} old webhooks ({size / 2**20:.0f} MiB): pruned {pruned}")
    print(f"pruning took {took:.1f} s; longest transaction {max(commits) * 1000:.0f} ms")
    p50, p99 = statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]
    print(
        f"{len(latencies)} webhooks recorded meanwhile:"
        f" p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--webhooks", type=int, default=20000)
    asyncio.run(main(parser.parse_args().webhooks))
