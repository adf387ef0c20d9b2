"""Escalation: hand a problem that remediation did not heal to people.

Delivers one JSON document — the problem, every step with its result, the last SLO
evaluation, and why — to each configured target: a generic webhook (the document itself,
optional bearer token) and a Slack-compatible incoming webhook (a readable `text`). Each
delivery is retried with backoff on connection errors, timeouts, 429 and 5xx.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import aiohttp

from receiver.actions import retries
from receiver.errors import ActionError, PermanentActionError
from receiver.models import ActionOutcome
from receiver.settings import Secret


class Escalation:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        webhook_url: str = "",
        webhook_token: Secret | None = None,
        slack_url: Secret | None = None,
        timeout: float = 10.0,
        attempts: int = 5,
        backoff: float = 1.0,
        sleep: retries.Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._targets: list[tuple[str, str, dict[str, str]]] = []
        if webhook_url:
            headers = {"Authorization": f"Bearer {webhook_token.reveal()}"} if webhook_token else {}
            self._targets.append(("webhook", webhook_url, headers))
        if slack_url is not None:
            self._targets.append(("slack", slack_url.reveal(), {}))
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep

    @property
    def configured(self) -> bool:
        return bool(self._targets)

    async def deliver(self, document: dict[str, Any]) -> ActionOutcome:
        if not self._targets:
            raise PermanentActionError(
                "no escalation target configured: set RECEIVER_ESCALATION_WEBHOOK_URL or"
                " RECEIVER_ESCALATION_SLACK_URL"
            )
        delivered: list[str] = []
        failed: dict[str, str] = {}
        for kind, url, headers in self._targets:
            body = document if kind == "webhook" else {"text": slack_text(document)}
            try:
                await retries.retrying(
                    functools.partial(self._post, url, body, headers),
                    attempts=self._attempts,
                    backoff=self._backoff,
                    sleep=self._sleep,
                    what=f"escalate to {kind}",
                )
                delivered.append(kind)
            except ActionError as e:
                failed[kind] = str(e)
        if not delivered:
            raise PermanentActionError(
                "escalation not delivered: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
            )
        detail = f"escalated to {', '.join(delivered)}"
        if failed:
            detail += " (failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()) + ")"
        return ActionOutcome(detail=detail, data={"delivered": delivered, "failed": failed})

    async def _post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        await retries.post_json(
            self._session,
            url,
            body,
            headers,
            give_up_after=self._timeout,
            unreachable="cannot deliver",
        )


def slack_text(document: dict[str, Any]) -> str:
    problem = document.get("problem") or {}
    where = "/".join(str(problem.get(k) or "?") for k in ("project", "stage", "service"))
    approval = document.get("approval")
    if isinstance(approval, dict):  # a remediation waits for a person, not a problem for help
        lines = [
            f":raised_hand: *{problem.get('title', 'problem')}* on {where}: rule"
            f" {document.get('rule')!r} waits for approval to run"
            f" {', '.join(approval.get('actions') or [])}",
            f"Approve: `{approval.get('cli')}` or {approval.get('approve')}"
            f" (reject: {approval.get('reject')}); escalated if nobody answers by"
            f" {approval.get('until')}",
        ]
        if document.get("url"):
            lines.append(f"Timeline: {document['url']}")
        return "\n".join(lines)
    lines = [
        f":rotating_light: *{problem.get('title', 'problem')}* on {where} needs a person",
        f"Reason: {document.get('reason', 'remediation did not heal it')}",
    ]
    for number, step in enumerate(document.get("steps") or [], start=1):
        lines.append(
            f"{number}. {step.get('action')}: {step.get('result')}"
            + (f" — {step['detail']}" if step.get("detail") else "")
        )
    evaluation = document.get("evaluation")
    if isinstance(evaluation, dict):
        lines.append(
            f"Last SLO evaluation: {evaluation.get('result')} (score {evaluation.get('score')})"
        )
    if document.get("url"):
        lines.append(f"Timeline: {document['url']}")
    return "\n".join(lines)
