"""Bounded retries with exponential backoff, driven by the error type (kopf's habit), and
the one place that says which HTTP answers are worth a retry.

A TemporaryActionError is retried after its own delay when it has one (0 for a conflict:
re-read at once; the server's Retry-After), else after backoff, 2 x backoff, 4 x backoff,
up to `attempts` tries in all; a PermanentActionError, or any other error, ends at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from receiver.errors import ActionError, PermanentActionError, TemporaryActionError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
_EXCERPT = 200  # of an answer's body, in an error
MAX_RETRY_AFTER = 30.0  # a server asking for longer is retried later by the next action


def for_status(status: int, message: str, *, retry_after: str | None = None) -> ActionError:
    """The error an HTTP answer of `status` (not 2xx) is: temporary for 429 and 5xx — after
    the server's Retry-After (in seconds) when it gives one — permanent for the rest."""
    if status == 429 or status >= 500:
        return TemporaryActionError(message, delay=_seconds(retry_after))
    return PermanentActionError(message)


def _seconds(retry_after: str | None) -> float | None:
    try:
        seconds = float(retry_after) if retry_after is not None else None
    except ValueError:
        return None  # an HTTP date: rare from these servers; the backoff will do
    return None if seconds is None else min(max(seconds, 0.0), MAX_RETRY_AFTER)


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
            delay = e.delay if e.delay is not None else backoff * 2 ** (number - 1)
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


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    headers: dict[str, str],
    *,
    give_up_after: float,
    unreachable: str = "cannot reach it",
) -> int:
    """POST `body` as JSON; the status when it is 2xx, else the error that answer is (see
    for_status); a timeout or a connection error is temporary."""
    try:
        async with session.post(
            url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=give_up_after)
        ) as response:
            status = response.status
            text = await response.text()
            retry_after = response.headers.get("Retry-After")
    except TimeoutError:
        raise TemporaryActionError(f"no answer within {give_up_after:g} s") from None
    except aiohttp.ClientError as e:
        raise TemporaryActionError(f"{unreachable}: {type(e).__name__} {e}") from None
    if not 200 <= status < 300:
        raise for_status(status, f"answered {status}: {text[:_EXCERPT]}", retry_after=retry_after)
    return status
