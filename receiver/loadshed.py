"""Overload that degrades gracefully: shed webhooks with 503 + Retry-After while the event
loop runs late, and log what was shed as one summary line a second, not a line a request.

The journal sheds by its own queue (JournalOverloaded); this sheds by the loop itself: when
requests arrive faster than the process can parse them, the loop falls behind, every
request (health probes included) waits, and senders time out without knowing whether
they were recorded. Answering 503 at once, before reading the body, keeps the loop
responsive and tells Alertmanager to retry later.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

logger = logging.getLogger(__name__)


class LoopLag:
    """How late the event loop runs, sustained: a task sleeps `interval` and measures the
    overshoot; the lag is the smallest of the last `ticks` overshoots, so that one slow
    moment (a garbage collection, a large body) sheds nothing, and overload — the loop late
    at every tick — does."""

    def __init__(self, *, interval: float = 0.05, ticks: int = 3) -> None:
        self.interval = interval
        self._recent: collections.deque[float] = collections.deque([0.0], maxlen=ticks)

    @property
    def seconds(self) -> float:
        return min(self._recent)

    async def run(self, summary: ShedSummary) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.interval)
            self._recent.append(max(0.0, time.monotonic() - started - self.interval))
            summary.flush()


class ShedSummary:
    """Requests shed, by reason, logged at most once per `every` seconds as one line."""

    def __init__(self, *, every: float = 1.0) -> None:
        self.every = every
        self._counts: collections.Counter[str] = collections.Counter()
        self._since = time.monotonic()

    def shed(self, reason: str) -> None:
        self._counts[reason] += 1
        self.flush()

    def flush(self) -> None:
        now = time.monotonic()
        if not self._counts or now - self._since < self.every:
            return
        logger.warning(
            "http.shed",
            extra={
                "requests": sum(self._counts.values()),
                "reasons": dict(self._counts),
                "seconds": round(now - self._since, 1),
            },
        )
        self._counts.clear()
        self._since = now


class Throttle:
    """At most one of each key per `every` seconds, and how many were held back meanwhile:
    what keeps a flood of the same event to a line a second."""

    def __init__(self, *, every: float = 1.0) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._held: collections.Counter[str] = collections.Counter()

    def passes(self, key: str) -> int | None:
        """None: hold this one back; else it passes, and so many were held since the last."""
        now = time.monotonic()
        if now - self._last.get(key, -self.every) < self.every:
            self._held[key] += 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class RejectLog:
    """Requests refused for what they carried (401, 400, 413): the first of each reason
    logged at once with why and from where, then at most one line per `every` seconds per
    reason, saying how many went unlogged meanwhile."""

    def __init__(self, *, every: float = 1.0) -> None:
        self._throttle = Throttle(every=every)

    def log(self, reason: str, *, path: str, remote: str, detail: str) -> None:
        unlogged = self._throttle.passes(reason)
        if unlogged is None:
            return
        logger.warning(
            "http.rejected",
            extra={
                "reason": reason,
                "path": path,
                "remote": remote,
                "detail": detail,
                "unlogged_since": unlogged,
            },
        )
