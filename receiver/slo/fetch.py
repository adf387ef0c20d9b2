"""One HTTP GET of an SLI provider, with its failures translated into SliError once."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from receiver.errors import SliError


async def get(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    give_up_after: float,
    system: str,
) -> tuple[int, str]:
    """(status, body text); SliError when `system` cannot be reached in time."""
    try:
        async with session.get(
            url,
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=give_up_after),
        ) as response:
            return response.status, await response.text()
    except TimeoutError:
        raise SliError(f"{system} did not answer within {give_up_after:g} s") from None
    except aiohttp.ClientError as e:
        raise SliError(f"cannot reach {system} at {url.split('/api/')[0]}: {e}") from None
