"""The Unleash adapter: switch feature flags through the admin API of Unleash v5 and later.

    POST /api/admin/projects/{project}/features/{flag}/environments/{environment}/on|off
    Authorization: <admin or personal access token>

(Keptn called `/api/admin/features/{name}/toggle/on|off`, removed in Unleash v5.) After
switching, the flag is read back; a flag that is not in the state asked for fails the step.
The Python UnleashClient SDK cannot do this: it only reads flags.
"""

from __future__ import annotations

import asyncio
import functools
import urllib.parse
from collections.abc import Sequence
from typing import Any

import aiohttp

from receiver.actions import retries
from receiver.errors import PermanentActionError, TemporaryActionError
from receiver.models import ActionOutcome
from receiver.settings import Secret

_EXCERPT = 200


class Unleash:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        token: Secret | None,
        project: str = "default",
        environment: str = "production",
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 1.0,
        sleep: retries.Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._url = url.rstrip("/")
        self._token = token
        self.project = project
        self.environment = environment
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep

    async def switch(self, flags: Sequence[tuple[str, bool]]) -> ActionOutcome:
        """Switch every flag, then verify each; fails on the first that does not hold."""
        if not self._url:
            raise PermanentActionError("Unleash is not configured: set RECEIVER_UNLEASH_URL")
        if self._token is None:
            raise PermanentActionError("no Unleash token: set RECEIVER_UNLEASH_TOKEN")
        before: dict[str, bool] = {}
        for name, on in flags:
            before[name] = await self._state(name)
            state = "on" if on else "off"
            path = (
                f"{self._feature_path(name)}/environments/"
                f"{urllib.parse.quote(self.environment, safe='')}/{state}"
            )
            await retries.retrying(
                functools.partial(self._request, "POST", path, flag=name),
                attempts=self._attempts,
                backoff=self._backoff,
                sleep=self._sleep,
                what=f"switch {name} {state}",
            )
        for name, on in flags:
            actual = await self._state(name)
            if actual is not on:
                raise PermanentActionError(
                    f"flag {name} is {'on' if actual else 'off'} in {self.environment} after"
                    f" switching it {'on' if on else 'off'}"
                )
        summary = ", ".join(
            f"{name} {'on' if before[name] else 'off'} → {'on' if on else 'off'}"
            for name, on in flags
        )
        return ActionOutcome(
            detail=f"Unleash {self.project}/{self.environment}: {summary}",
            data={
                "flags": {name: on for name, on in flags},
                "before": before,
                "project": self.project,
                "environment": self.environment,
            },
        )

    async def _state(self, name: str) -> bool:
        feature = await retries.retrying(
            functools.partial(self._request, "GET", self._feature_path(name), flag=name),
            attempts=self._attempts,
            backoff=self._backoff,
            sleep=self._sleep,
            what=f"read {name}",
        )
        for environment in feature.get("environments", []) if isinstance(feature, dict) else []:
            if environment.get("name") == self.environment:
                return bool(environment.get("enabled"))
        raise PermanentActionError(
            f"flag {name} has no environment {self.environment!r} in project {self.project}"
        )

    def _feature_path(self, name: str) -> str:
        return (
            f"/api/admin/projects/{urllib.parse.quote(self.project, safe='')}"
            f"/features/{urllib.parse.quote(name, safe='')}"
        )

    async def _request(self, method: str, path: str, *, flag: str) -> Any:
        assert self._token is not None
        try:
            async with self._session.request(
                method,
                f"{self._url}{path}",
                headers={"Authorization": self._token.reveal(), "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                text = await response.text()
                status = response.status
                retry_after = response.headers.get("Retry-After")
                body = await response.json(content_type=None) if text and status < 300 else None
        except TimeoutError:
            raise TemporaryActionError(
                f"Unleash did not answer within {self._timeout:g} s"
            ) from None
        except aiohttp.ClientError as e:
            raise TemporaryActionError(f"cannot reach Unleash at {self._url}: {e}") from None
        if status in (401, 403):
            raise PermanentActionError(
                f"Unleash answered {status}: the token is not an admin token, or may not change"
                f" flags in project {self.project!r}"
            )
        if status == 404:
            raise PermanentActionError(
                f"Unleash answered 404: no flag {flag!r} in project {self.project!r}"
                f" (or no environment {self.environment!r})"
            )
        if status >= 300:
            raise retries.for_status(
                status, f"Unleash answered {status}: {text[:_EXCERPT]}", retry_after=retry_after
            )
        return body
