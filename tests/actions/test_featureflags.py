"""Switching Unleash flags against a real Unleash server, verified as an application sees it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from UnleashClient import UnleashClient  # type: ignore[attr-defined]  # not re-exported

from receiver.errors import ActionError, PermanentActionError, TemporaryActionError
from receiver.models import Toggle
from receiver.settings import Secret
from tests import processes
from tests.actions.conftest import BACKOFF, CARTS, MakeActions, Sleeps
from tests.fault_proxy import FaultProxy
from tests.unleash_server import Unleash


def flag_name() -> str:
    return f"EnablePromotion-{uuid.uuid4().hex[:8]}"


def sdk_sees(unleash: Unleash, name: str, expected: bool, cache: Path) -> bool:
    """Poll as the carts service would: the Python UnleashClient SDK with a client token."""
    sdk = UnleashClient(
        url=f"{unleash.url}/api",
        app_name="carts",
        custom_headers={"Authorization": unleash.client_token},
        refresh_interval=1,
        disable_metrics=True,
        disable_registration=True,
        cache_directory=str(cache),
    )
    sdk.initialize_client()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sdk.is_enabled(name) is expected:
                return True
            time.sleep(0.2)
        return False
    finally:
        sdk.destroy()


async def test_a_flag_is_switched_off_and_the_sdk_sees_it(
    make_actions: MakeActions, unleash: Unleash, tmp_path: Path
) -> None:
    name = flag_name()
    unleash.create_flag(name)
    assert await asyncio.to_thread(sdk_sees, unleash, name, True, tmp_path / "before")
    actions = await make_actions(unleash_url=unleash.url, unleash_token=Secret(unleash.admin_token))
    outcome = await actions.run(Toggle(flags=((name, False),)), CARTS)
    assert outcome.detail == f"Unleash default/production: {name} on → off"
    assert unleash.enabled(name) is False  # the admin API
    assert await asyncio.to_thread(sdk_sees, unleash, name, False, tmp_path / "after")


async def test_several_flags_switch_in_one_action_and_switching_is_idempotent(
    make_actions: MakeActions, unleash: Unleash
) -> None:
    first, second = flag_name(), flag_name()
    unleash.create_flag(first)
    unleash.create_flag(second, enabled_in=None)
    actions = await make_actions(unleash_url=unleash.url, unleash_token=Secret(unleash.admin_token))
    flags = ((first, False), (second, True))
    await actions.run(Toggle(flags=flags), CARTS)
    await actions.run(Toggle(flags=flags), CARTS)  # a resume after a crash: same end state
    assert (unleash.enabled(first), unleash.enabled(second)) == (False, True)


async def test_a_client_token_is_not_an_admin_token(
    make_actions: MakeActions, unleash: Unleash
) -> None:
    name = flag_name()
    unleash.create_flag(name)
    actions = await make_actions(
        unleash_url=unleash.url, unleash_token=Secret(unleash.client_token)
    )
    with pytest.raises(PermanentActionError, match="not an admin token"):
        await actions.run(Toggle(flags=((name, False),)), CARTS)
    assert unleash.enabled(name) is True


async def test_a_wrong_token_is_refused(make_actions: MakeActions, unleash: Unleash) -> None:
    actions = await make_actions(unleash_url=unleash.url, unleash_token=Secret("*:*.wrong"))
    with pytest.raises(PermanentActionError, match="answered 401"):
        await actions.run(Toggle(flags=(("EnablePromotion", False),)), CARTS)


async def test_an_unknown_flag_names_flag_and_project(
    make_actions: MakeActions, unleash: Unleash
) -> None:
    actions = await make_actions(unleash_url=unleash.url, unleash_token=Secret(unleash.admin_token))
    with pytest.raises(PermanentActionError, match="no flag 'NoSuchFlag' in project 'default'"):
        await actions.run(Toggle(flags=(("NoSuchFlag", False),)), CARTS)


async def test_unleash_down_is_temporary_and_retried(make_actions: MakeActions) -> None:
    actions = await make_actions(
        unleash_url=f"http://127.0.0.1:{processes.free_port()}", unleash_token=Secret("*:*.x")
    )
    with pytest.raises(
        TemporaryActionError, match=r"cannot reach Unleash.*gave up after 3 attempts"
    ):
        await actions.run(Toggle(flags=(("EnablePromotion", False),)), CARTS)


async def test_without_a_url_the_action_says_what_to_set(make_actions: MakeActions) -> None:
    actions = await make_actions()
    assert "toggle-feature" in actions.cannot_run()
    with pytest.raises(PermanentActionError, match="set RECEIVER_UNLEASH_URL"):
        await actions.run(Toggle(flags=(("EnablePromotion", False),)), CARTS)


# -- what the real Unleash will not do on demand, injected in front of it ----------------------


@pytest.fixture
async def proxy(unleash: Unleash) -> AsyncIterator[tuple[FaultProxy, str]]:
    faults = FaultProxy(unleash.url)
    server = TestServer(faults.app())
    await server.start_server()
    yield faults, str(server.make_url("")).rstrip("/")
    await server.close()


async def test_a_switch_that_did_not_hold_is_caught_by_the_read_back(
    make_actions: MakeActions, unleash: Unleash, proxy: tuple[FaultProxy, str]
) -> None:
    faults, url = proxy
    name = flag_name()
    unleash.create_flag(name)
    faults.swallow("POST", f"/features/{name}/environments/production/off")  # 200, not done
    actions = await make_actions(unleash_url=url, unleash_token=Secret(unleash.admin_token))
    with pytest.raises(PermanentActionError, match=f"flag {name} is on in production after"):
        await actions.run(Toggle(flags=((name, False),)), CARTS)
    assert unleash.enabled(name) is True


async def test_unleash_errors_are_retried_with_backoff_or_as_asked(
    make_actions: MakeActions,
    unleash: Unleash,
    proxy: tuple[FaultProxy, str],
    sleeps: Sleeps,
) -> None:
    faults, url = proxy
    name = flag_name()
    unleash.create_flag(name)
    faults.fail("POST", f"/features/{name}/environments", 503, times=2)
    faults.fail("GET", f"/features/{name}", 429, headers={"Retry-After": "2"})
    actions = await make_actions(unleash_url=url, unleash_token=Secret(unleash.admin_token))
    outcome = await actions.run(Toggle(flags=((name, False),)), CARTS)
    assert outcome.detail == f"Unleash default/production: {name} on → off"
    assert sleeps.delays == [2.0, BACKOFF, 2 * BACKOFF]  # the read, then the switch
    assert unleash.enabled(name) is False


async def test_an_unleash_that_does_not_answer_in_time_fails_the_step(
    make_actions: MakeActions, unleash: Unleash, proxy: tuple[FaultProxy, str]
) -> None:
    faults, url = proxy
    name = flag_name()
    unleash.create_flag(name)
    faults.stall("GET", f"/features/{name}", 2.0, times=3)  # every attempt
    actions = await make_actions(
        unleash_url=url, unleash_token=Secret(unleash.admin_token), action_timeout=0.3
    )
    with pytest.raises(ActionError, match=r"(did not answer within|timed out after) 0\.3 s"):
        await actions.run(Toggle(flags=((name, False),)), CARTS)
    assert unleash.enabled(name) is True
