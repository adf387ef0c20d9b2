"""Actions run as an HTTP POST: the action names of remediation.yaml that the receiver does
not run itself (Keptn >= 0.7 handed them to whichever service subscribed: `run-snow-wf`,
`rollback`), mapped in receiver.yaml under `actions.webhooks`.

The body is one JSON document — the action, its `value` from remediation.yaml, the
remediation, the step and the problem — and an `Idempotency-Key` header that is the same
for every attempt and for a run resumed after a restart, so that a receiver of the call can
tell a retry from a second action. 2xx is success; 429, 5xx, timeouts and connection errors
are retried with backoff; any other answer fails the step.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import aiohttp

from receiver.actions import retries
from receiver.errors import PermanentActionError
from receiver.models import ActionOutcome
from receiver.settings import WebhookAction


class Webhooks:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        actions: dict[str, WebhookAction],
        *,
        timeout: float,
        attempts: int,
        backoff: float,
        sleep: retries.Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._actions = actions
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep

    def url(self, name: str) -> str | None:
        action = self._actions.get(name)
        return action.url if action is not None else None

    async def run(self, name: str, document: dict[str, Any], *, key: str) -> ActionOutcome:
        action = self._actions[name]
        headers = {"Idempotency-Key": key}
        if action.token_file is not None:
            token = await _read_token(action.token_file, name)
            headers["Authorization"] = f"Bearer {token}"
        status = await retries.retrying(
            functools.partial(self._post, action.url, document, headers),
            attempts=self._attempts,
            backoff=self._backoff,
            sleep=self._sleep,
            what=f"POST {name}",
        )
        return ActionOutcome(
            detail=f"{name}: {action.url} answered {status}",
            data={"url": action.url, "status": status, "idempotency_key": key},
        )

    async def _post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> int:
        return await retries.post_json(
            self._session, url, body, headers, give_up_after=self._timeout
        )


async def _read_token(path: str, name: str) -> str:
    try:
        token = (await asyncio.to_thread(Path(path).read_text, encoding="utf-8")).strip()
    except (OSError, UnicodeDecodeError) as e:
        raise PermanentActionError(
            f"cannot read the token of action {name!r} ({path}): {e}"
        ) from None
    if not token:
        raise PermanentActionError(f"the token file of action {name!r} ({path}) is empty")
    return token
