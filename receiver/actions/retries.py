"""Bounded retries with exponential backoff, driven by the error type (kopf's habit).

A TemporaryActionError is retried after its own delay (at least the backoff), up to
`attempts` tries in all; a PermanentActionError, or any other error, ends at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from receiver.errors import TemporaryActionError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    backoff: float,
    sleep: Sleep,
    what: str,
) -> T:
    """The result of the first successful `attempt()`; the last error when all fail."""
    for number in range(1, attempts + 1):
        try:
            return await attempt()
        except TemporaryActionError as e:
            if number == attempts:
                raise TemporaryActionError(
                    f"{e} (gave up after {attempts} attempts)", delay=e.delay
                ) from e
            delay = max(e.delay, backoff * 2 ** (number - 1))
            logger.warning(
                "action.retrying",
                extra={
                    "what": what,
                    "attempt": number,
                    "error": str(e),
                    "delay": delay,
                },
            )
            await sleep(delay)
    raise AssertionError("unreachable: attempts >= 1")
