"""Who may act. Every replica records webhooks and serves reads; only the holder of the
leadership runs remediations. One process on its own SQLite journal is always the leader
(`Solo`); several replicas on a shared journal need a lease (issue "several replicas").
"""

from __future__ import annotations

from typing import Protocol


class Leadership(Protocol):
    async def acquire(self) -> None:
        """Return once this process leads."""
        ...

    async def release(self) -> None: ...


class Solo:
    """The only process on its journal: it leads from the start and never loses it."""

    async def acquire(self) -> None:
        return None

    async def release(self) -> None:
        return None
