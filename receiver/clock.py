"""Time, injected: the engine waits minutes in production and milliseconds in tests."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Protocol


def iso(timestamp: float | None) -> str | None:
    """A moment as the API and the log write it: ISO 8601 in UTC, milliseconds, `Z`."""
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def sleep_until(self, moment: float) -> None:
        """Until `moment` (seconds since the epoch), however late the sleep begins."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, moment: float) -> None:
        await self.sleep(moment - self.now())
