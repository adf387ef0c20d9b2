"""Fixtures for the action adapters: the Kubernetes stand-in behind a kubeconfig, and Actions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from receiver.actions.kubernetes import Kubernetes
from receiver.actions.runner import Actions
from receiver.models import ServiceRef
from tests import kube_standin
from tests.conftest import make_settings

CARTS = ServiceRef(project="sockshop", stage="production", service="carts")


BACKOFF = 0.25  # the tests' backoff: 0.25 s, then 0.5 s, ... (production: 1 s, 2 s, ...)


class Sleeps:
    """The retry sleep, recorded instead of slept: which delays a retry chose, in order."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def cluster() -> kube_standin.Cluster:
    cluster = kube_standin.Cluster()
    cluster.add_deployment("sockshop-production", "carts-primary", replicas=1)
    return cluster


@pytest.fixture
async def kubeconfig(
    cluster: kube_standin.Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Path]:
    server = TestServer(kube_standin.create_app(cluster))
    await server.start_server()
    path = kube_standin.write_kubeconfig(tmp_path / "kubeconfig", str(server.make_url("")))
    monkeypatch.setenv("KUBECONFIG", str(path))  # how production finds the cluster too
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield path
    await server.close()


MakeActions = Callable[..., Awaitable[Actions]]


@pytest.fixture
async def make_actions(
    kubeconfig: Path, tmp_path: Path, sleeps: Sleeps
) -> AsyncIterator[MakeActions]:
    closers: list[Any] = []

    async def make(*, request_timeout: float = 5, **overrides: Any) -> Actions:
        settings = make_settings(tmp_path, **{"action_backoff": BACKOFF} | overrides)
        kubernetes = await Kubernetes.connect(
            request_timeout=request_timeout,
            attempts=settings.action_attempts,
            backoff=settings.action_backoff,
            sleep=sleeps,
        )
        session = aiohttp.ClientSession()
        closers.extend([kubernetes.close, session.close])
        return Actions.from_settings(
            settings,
            session=session,
            kubernetes=kubernetes,
            configured=frozenset({CARTS}),
            sleep=sleeps,
        )

    yield make
    for close in closers:
        await close()
