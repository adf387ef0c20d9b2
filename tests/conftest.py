"""Fixtures shared by the whole suite: settings, a configuration tree, a live test client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client as prom
import psycopg
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from receiver import configuration, server, settings
from receiver.journal import postgres as postgres_journal
from tests import kube_control_plane, postgres_server, unleash_server
from tests import prometheus_stack as stacks

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


def config_map_volume(directory: Path, source: Path = EXAMPLE_CONFIG) -> Path:
    """`source` as the kubelet lays out a ConfigMap volume with `items` (what
    generated/config-volume.yaml mounts): the files in a timestamped folder, `..data`
    pointing at it, each top-level entry a symlink through `..data`."""
    stamp = directory / "..2026_12_04_03_00_00.000000001"
    shutil.copytree(source, stamp)
    (directory / "..data").symlink_to(stamp.name)
    for entry in stamp.iterdir():
        (directory / entry.name).symlink_to(f"..data/{entry.name}")
    return directory


def make_settings(tmp_path: Path, **overrides: Any) -> settings.Settings:
    values: dict[str, Any] = {
        "store_path": journal_url(tmp_path),
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
            configuration.with_settings(config_dir, make_settings(tmp_path, **overrides)),
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
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube_control_plane.ControlPlane]:
    """A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager),
    shared by the session: each test works in namespaces of its own (see the module)."""
    with kube_control_plane.running(tmp_path_factory.mktemp("kube")) as plane:
        yield plane


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.Postgres]:
    """A real PostgreSQL, shared by the session: a database per test that asks for one."""
    with postgres_server.running() as server:
        yield server


@pytest.fixture(scope="session")
def unleash(
    tmp_path_factory: pytest.TempPathFactory, postgres: postgres_server.Postgres
) -> Iterator[unleash_server.Unleash]:
    """A real Unleash server on a real PostgreSQL, shared by the session (see the module)."""
    with unleash_server.running(tmp_path_factory.mktemp("unleash"), postgres) as server:
        yield server


# Where make_settings puts a test's journal: a SQLite file in its tmp_path, unless the test
# runs on PostgreSQL (journal_backend): then a database of its own, one per tmp_path (a
# restarted receiver of the same test finds the same journal).
_POSTGRES_JOURNALS: dict[str, Any] = {"server": None, "databases": {}}


def journal_url(tmp_path: Path) -> str:
    server: postgres_server.Postgres | None = _POSTGRES_JOURNALS["server"]
    if server is None:
        return str(tmp_path / "journal.db")
    databases: dict[Path, str] = _POSTGRES_JOURNALS["databases"]
    if tmp_path not in databases:
        databases[tmp_path] = server.create_database()
    return databases[tmp_path]


def edit_journal(tmp_path: Path, *statements: str) -> None:
    """Change a test's journal behind the receiver's back (what a crash between two writes
    leaves, a decision written by another process), on whichever backend it runs."""
    url = journal_url(tmp_path)
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as connection:  # one transaction, committed at the end
            for statement in statements:
                connection.execute(statement.encode())
        return
    sqlite = sqlite3.connect(url)
    with sqlite:
        for statement in statements:
            sqlite.execute(statement)
    sqlite.close()


@contextlib.contextmanager
def journal_write_lock(tmp_path: Path) -> Iterator[None]:
    """Another process holds the journal's write lock meanwhile: its writes wait, then fail."""
    url = journal_url(tmp_path)
    if url.startswith("postgresql://"):
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (postgres_journal.WRITE_LOCK,))
            yield
        return
    other = sqlite3.connect(url, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test on each journal backend (`pytestmark = usefixtures("journal_backend")`):
    one contract for both, checked by the same tests."""
    if request.param == "postgresql":
        _POSTGRES_JOURNALS["server"] = request.getfixturevalue("postgres")
    try:
        yield request.param
    finally:
        _POSTGRES_JOURNALS["server"] = None
        _POSTGRES_JOURNALS["databases"] = {}


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it (kopf's habit)."""
    yield
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftovers, f"tasks left running: {leftovers}"
