"""Time, injected: the engine waits minutes in production and milliseconds in tests."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


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
