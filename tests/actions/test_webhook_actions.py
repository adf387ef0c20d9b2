"""Actions run as an HTTP POST (actions.webhooks): dry run, answers that end it, the token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from receiver.errors import PermanentActionError, TemporaryActionError
from receiver.models import Custom
from receiver.settings import WebhookAction
from tests.actions.conftest import CARTS, MakeActions, Sleeps

Hook = tuple[TestServer, list[int], list[web.Request]]  # the server, answers to give, requests
DOCUMENT = {"action": "rollback", "idempotency_key": "selfheal-7-1"}


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    answers: list[int] = []
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=answers.pop(0) if answers else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = TestServer(app)
    await server.start_server()
    yield server, answers, seen
    await server.close()


async def test_a_dry_run_posts_nothing(make_actions: MakeActions, hook: Hook) -> None:
    server, _, seen = hook
    url = str(server.make_url("/hook"))
    actions = await make_actions(dry_run=True, action_webhooks={"rollback": WebhookAction(url=url)})
    outcome = await actions.run(Custom(name="rollback", value=None), CARTS, document=DOCUMENT)
    assert outcome.detail == f"dry run, nothing changed: POST rollback to {url}"
    assert seen == []


async def test_a_4xx_ends_the_action_and_5xx_is_retried_until_the_attempts_run_out(
    make_actions: MakeActions,
    hook: Hook,
    sleeps: Sleeps,
) -> None:
    server, answers, seen = hook
    url = str(server.make_url("/hook"))
    actions = await make_actions(action_webhooks={"rollback": WebhookAction(url=url)})
    answers.extend([404])
    with pytest.raises(PermanentActionError, match="answered 404"):
        await actions.run(Custom(name="rollback", value=None), CARTS, document=DOCUMENT)
    assert len(seen) == 1
    answers.extend([503, 503, 503])
    with pytest.raises(TemporaryActionError, match="gave up after 3 attempts"):
        await actions.run(Custom(name="rollback", value=None), CARTS, document=DOCUMENT)
    assert len(seen) == 4
    assert {r.headers["Idempotency-Key"] for r in seen} == {"selfheal-7-1"}
    assert "Authorization" not in seen[0].headers  # no token_file, no token


async def test_a_token_file_that_cannot_be_read_fails_the_step_naming_it(
    make_actions: MakeActions,
    hook: Hook,
    tmp_path: Path,
) -> None:
    server, _, seen = hook
    missing = tmp_path / "missing-token"
    action = WebhookAction(url=str(server.make_url("/hook")), token_file=str(missing))
    actions = await make_actions(action_webhooks={"rollback": action})
    with pytest.raises(
        PermanentActionError, match=f"cannot read the token of action 'rollback' \\({missing}\\)"
    ):
        await actions.run(Custom(name="rollback", value=None), CARTS, document=DOCUMENT)
    assert seen == []
