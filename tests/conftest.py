"""Fixtures shared by the whole suite: settings, a configuration tree, a live test client."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client as prom
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from receiver import configtree, server, settings
from tests import prometheus_stack as stacks
from tests import unleash_server

pytest_plugins = ["tests.engine_world", "tests.crash_stage"]  # make_world, stage

PAYLOADS = Path(__file__).parent / "payloads"
EXAMPLE_CONFIG = Path(__file__).parent.parent / "config"
TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return loaded


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the example configuration (sockshop/production/carts), safe to change."""
    target = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, target)
    return target


def make_settings(tmp_path: Path, **overrides: Any) -> settings.Settings:
    values: dict[str, Any] = {
        "store_path": str(tmp_path / "journal.db"),
        "auth_token": settings.Secret(TOKEN),
        "log_format": "text",
        # Off unless a test is about it: its round would be one more sleeper on a FakeClock.
        "store_retention": 0.0,
        # Off too: a reload reads the files and the environment, not the overrides given here.
        "watch_config": 0.0,
    }
    values.update(overrides)
    return settings.Settings(**values)


ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient, tmp_path: Path, config_dir: Path) -> ClientFactory:
    """A test client of a receiver on the example config; keyword arguments override settings."""

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        app = server.create_app(
            make_settings(tmp_path, **overrides),
            configtree.scan(config_dir),
            registry=prom.CollectorRegistry(),
        )
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[Any, Any]:
    return await make_client()


@pytest.fixture(scope="session")
def prometheus_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stacks.Stack]:
    """A real Prometheus scraping the carts stand-in, shared by the session (see the module)."""
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "config"
    shutil.copytree(EXAMPLE_CONFIG, config)
    with stacks.running(workdir, config) as stack:
        yield stack


@pytest.fixture(scope="session")
def unleash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[unleash_server.Unleash]:
    """A real Unleash server on a real PostgreSQL, shared by the session (see the module)."""
    with unleash_server.running(tmp_path_factory.mktemp("unleash")) as server:
        yield server


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it (kopf's habit)."""
    yield
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftovers, f"tasks left running: {leftovers}"
