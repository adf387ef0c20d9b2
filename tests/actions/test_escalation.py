"""Escalation delivered to local HTTP servers that record what they receive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from receiver.errors import PermanentActionError
from receiver.models import Escalate
from receiver.settings import Secret
from tests import processes
from tests.actions.conftest import BACKOFF, CARTS, MakeActions, Sleeps

DOCUMENT = {
    "problem": {
        "key": "8dd2c31a47cf2e78",
        "title": "response_time_p90",
        "project": "sockshop",
        "stage": "production",
        "service": "carts",
    },
    "reason": "no action healed it",
    "steps": [
        {"action": "scaling", "result": "succeeded", "detail": "1 → 2 replicas"},
        {"action": "toggle-feature", "result": "failed", "detail": "flag not found"},
    ],
    "evaluation": {"result": "fail", "score": 50.0},
}


class Recorder:
    """An endpoint that answers `failures` with `failure` (503) first, then `status` (200),
    takes `stall` seconds to answer, and keeps every body."""

    def __init__(
        self,
        *,
        failures: int = 0,
        status: int = 200,
        failure: int = 503,
        headers: dict[str, str] | None = None,
        stall: float = 0.0,
    ) -> None:
        self.received: list[tuple[dict[str, Any], str | None]] = []
        self.failures = failures
        self.status = status
        self.failure = failure
        self.headers = headers or {}
        self.stall = stall

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.json(), request.headers.get("Authorization")))
        await asyncio.sleep(self.stall)
        if self.failures:
            self.failures -= 1
            return web.Response(status=self.failure, text="try later", headers=self.headers)
        return web.Response(status=self.status, text="ok")


async def serve(recorder: Recorder) -> TestServer:
    app = web.Application()
    app.router.add_post("/hook", recorder.handle)
    server = TestServer(app)
    await server.start_server()
    return server


@pytest.fixture
async def servers() -> AsyncIterator[list[TestServer]]:
    started: list[TestServer] = []
    yield started
    for server in started:
        await server.close()


async def test_the_document_reaches_the_webhook_after_failed_attempts(
    make_actions: MakeActions, servers: list[TestServer], sleeps: Sleeps
) -> None:
    recorder = Recorder(failures=2)
    servers.append(await serve(recorder))
    actions = await make_actions(
        escalation_webhook_url=str(servers[0].make_url("/hook")),
        escalation_webhook_token=Secret("hook-token"),
    )
    outcome = await actions.run(Escalate(), CARTS, document=DOCUMENT)
    assert outcome.data == {"delivered": ["webhook"], "failed": {}}
    assert len(recorder.received) == 3  # 503, 503, 200
    assert sleeps.delays == [BACKOFF, 2 * BACKOFF]
    body, authorization = recorder.received[-1]
    assert body == DOCUMENT
    assert authorization == "Bearer hook-token"


async def test_slack_gets_readable_text(
    make_actions: MakeActions, servers: list[TestServer]
) -> None:
    recorder = Recorder()
    servers.append(await serve(recorder))
    actions = await make_actions(escalation_slack_url=Secret(str(servers[0].make_url("/hook"))))
    await actions.run(Escalate(), CARTS, document=DOCUMENT)
    ((body, _),) = recorder.received
    assert set(body) == {"text"}
    assert "*response_time_p90* on sockshop/production/carts" in body["text"]
    assert "2. toggle-feature: failed — flag not found" in body["text"]
    assert "Last SLO evaluation: fail (score 50.0)" in body["text"]


async def test_one_target_failing_is_reported_beside_the_one_that_worked(
    make_actions: MakeActions, servers: list[TestServer]
) -> None:
    good, bad = Recorder(), Recorder(status=400)
    servers.extend([await serve(good), await serve(bad)])
    actions = await make_actions(
        escalation_webhook_url=str(servers[0].make_url("/hook")),
        escalation_slack_url=Secret(str(servers[1].make_url("/hook"))),
    )
    outcome = await actions.run(Escalate(), CARTS, document=DOCUMENT)
    assert outcome.data["delivered"] == ["webhook"]
    assert "answered 400" in outcome.data["failed"]["slack"]
    assert len(bad.received) == 1  # a 4xx is not retried


async def test_nothing_delivered_fails_the_step(make_actions: MakeActions) -> None:
    actions = await make_actions(
        escalation_webhook_url=f"http://127.0.0.1:{processes.free_port()}/hook"
    )
    with pytest.raises(PermanentActionError, match="escalation not delivered: webhook: cannot"):
        await actions.run(Escalate(), CARTS, document=DOCUMENT)


async def test_without_targets_the_step_says_what_to_set(make_actions: MakeActions) -> None:
    actions = await make_actions()
    assert "escalate" in actions.cannot_run()
    with pytest.raises(PermanentActionError, match="RECEIVER_ESCALATION_WEBHOOK_URL"):
        await actions.run(Escalate(), CARTS, document=DOCUMENT)


async def test_a_throttled_webhook_is_retried_when_it_asks(
    make_actions: MakeActions, servers: list[TestServer], sleeps: Sleeps
) -> None:
    recorder = Recorder(failures=1, failure=429, headers={"Retry-After": "3"})
    servers.append(await serve(recorder))
    actions = await make_actions(escalation_webhook_url=str(servers[0].make_url("/hook")))
    outcome = await actions.run(Escalate(), CARTS, document=DOCUMENT)
    assert outcome.data["delivered"] == ["webhook"]
    assert sleeps.delays == [3.0]


async def test_a_webhook_that_does_not_answer_in_time_is_retried_then_fails(
    make_actions: MakeActions, servers: list[TestServer], sleeps: Sleeps
) -> None:
    recorder = Recorder(stall=1.0)
    servers.append(await serve(recorder))
    actions = await make_actions(
        escalation_webhook_url=str(servers[0].make_url("/hook")),
        action_timeout=0.2,
        escalation_attempts=2,
    )
    # The request timeout and the action timeout are the same 0.2 s: either may fire first.
    with pytest.raises(PermanentActionError, match=r"(no answer within|timed out after) 0\.2 s"):
        await actions.run(Escalate(), CARTS, document=DOCUMENT)
